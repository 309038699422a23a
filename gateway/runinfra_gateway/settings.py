"""Gateway settings: a TOML file, overridden by ``RUNINFRA_*`` environment variables, then CLI flags.

Every value is validated here, once, at start; a bad value raises
:class:`ConfigError` naming the key (``deployments[1].operations``) so the
operator can fix the file without reading a traceback.

File format (every table optional)::

    [server]
    host = "127.0.0.1"
    port = 8080
    data_dir = "./runinfra-data"          # SQLite file, journals, generated admin token hash
    database_url = "postgresql+psycopg://..."   # default: sqlite in data_dir
    public_base_url = "https://gw.example.com"  # absolute image URLs, top-up links
    max_body_bytes = 26214400
    redis_url = "redis://..."             # shared rate limits across replicas
    shutdown_grace_seconds = 30
    request_head_timeout_seconds = 30     # 408 when a request line + headers take longer
    request_body_timeout_seconds = 30     # 408 when a request body pauses longer between reads

    [limits]                              # defaults for keys created without their own
    requests_per_minute = 600
    tokens_per_minute = 200000

    [[workspaces]]
    id = "default"
    name = "Default workspace"
    credits_cents = 1000

    [[deployments]]                       # see the README; passed to the backend factories
    id = "smollm2"
    backend = "upstream"
    ...

    [[pipelines]]
    id = "voice"
    workspace = "default"
    deployments = { speech_to_text = "whisper", llm = "smollm2", text_to_speech = "piper" }
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit

import tomllib

from runinfra_gateway.backends.base import OPERATIONS
from runinfra_gateway.real_numbers import is_number
from runinfra_gateway.webhooks.settings import WebhookSettings

__all__ = [
    "DEPLOYMENT_ID_PATTERN",
    "PIPELINE_ID_PATTERN",
    "PIPELINE_STAGES",
    "WORKSPACE_ID_PATTERN",
    "ConfigError",
    "DeploymentConfig",
    "PipelineConfig",
    "Settings",
    "WorkspaceConfig",
    "load_settings",
    "parse_deployment",
    "parse_pipeline",
    "read_config_document",
    "restart_only_changes",
]

#: Deployment ids are model names clients type; ``/`` is allowed (``org/model``) but not ``..`` or edges.
DEPLOYMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._:/-]{0,126}[A-Za-z0-9])?$")
#: Pipeline ids are one URL path segment: no dots, no slashes, nothing to traverse with.
PIPELINE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
WORKSPACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PIPELINE_STAGES: tuple[str, ...] = ("speech_to_text", "llm", "text_to_speech")
BACKENDS = ("embedded", "upstream")
# Path segments under /v1 that are routes, so a pipeline may not take their name.
RESERVED_PIPELINE_IDS = frozenset({"models", "chat", "responses", "embeddings", "images", "audio", "pipeline"})


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class DeploymentConfig:
    """One ``[[deployments]]`` table: the fields the core reads, and the whole table for the factory."""

    id: str
    backend: str
    operations: tuple[str, ...]
    table: Mapping[str, Any] = field(repr=False)  # may hold an upstream api_key
    workspace_id: str | None = None
    params: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WorkspaceConfig:
    id: str
    name: str
    credits_cents: float = 0.0


@dataclass(frozen=True)
class PipelineConfig:
    id: str
    workspace_id: str
    deployments: Mapping[str, str]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("runinfra-data")
    database_url: str | None = None
    public_base_url: str | None = None
    max_body_bytes: int = 25 * 1024 * 1024
    redis_url: str | None = None
    shutdown_grace_seconds: float = 30.0
    request_head_timeout_seconds: float = 30.0
    request_body_timeout_seconds: float = 30.0
    image_url_ttl_seconds: int = 600
    idempotency_max_replay_bytes: int = 1_000_000
    idempotency_retention_seconds: int = 86_400
    topup_url: str | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    access_log: bool = True
    admin_token: str | None = field(default=None, repr=False)
    config_path: Path | None = None
    deployments: tuple[DeploymentConfig, ...] = ()
    workspaces: tuple[WorkspaceConfig, ...] = ()
    pipelines: tuple[PipelineConfig, ...] = ()
    #: The ``[webhooks]`` table, validated by ``runinfra_gateway.webhooks.settings.WebhookSettings``.
    webhooks: Mapping[str, Any] = field(default_factory=dict)
    #: The file's ``[server]``, ``[limits]`` and ``[webhooks]`` tables as read (before environment and flags):
    #: a reload compares them to name the changes that wait for a restart. Not shown: URLs may hold passwords.
    restart_tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'runinfra.sqlite3').resolve()}"

    @property
    def base_url(self) -> str:
        """The externally visible origin (no trailing slash)."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def resolved_topup_url(self) -> str:
        return self.topup_url or f"{self.base_url}/dashboard/credits"


# -- small typed readers: each names the key it reads ----------------------------------------


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _opt_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    if table.get(key) is None:
        return None
    return _str(table, key, where)


def _int(table: Mapping[str, Any], key: str, where: str, default: int, *, minimum: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


_MIN_BODY_BYTES = 1024
_BASE_URL_USE = "prefixes image URLs and top-up links"


def _http_url(url: str | None, name: str, *, use: str, query_ok: bool = False) -> str | None:
    """``url`` when it is an ASCII http(s) URL with a host, no user (and, unless ``query_ok``, no query or fragment)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url) if url.isascii() and url.isprintable() and " " not in url else None
        port_ok = parts is not None and (parts.port is None or parts.port > 0)  # .port raises past 65535
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        parts, port_ok = None, False
    if (
        parts is None
        or not port_ok
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or (not query_ok and (parts.query or parts.fragment))
    ):
        # The value is not shown: a URL with credentials in it would print them.
        extra = "" if query_ok else ", query or fragment"
        raise ConfigError(f"{name}: expected an http:// or https:// URL in ASCII with a host and no user{extra} "
                          f"(it {use})")
    return url


def _database_url(url: str | None, name: str) -> str | None:
    """``url`` when SQLAlchemy can parse it and knows its dialect (checked at load, not at the first query)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url  # here: the CLI's other commands must not load SQLAlchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        # The value is not shown: a database URL usually holds a password.
        raise ConfigError(f"{name}: not a database URL the gateway can use (expected e.g. "
                          "postgresql+psycopg://user:password@host/db or sqlite:////path/runinfra.sqlite3)") from None
    return url


def _redis_url(url: str | None, name: str) -> str | None:
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{name}: expected a URL starting with redis://, rediss:// or unix://")  # may hold a password
    return url


def _opt_int(table: Mapping[str, Any], key: str, where: str) -> int | None:
    if table.get(key) is None:
        return None
    return _int(table, key, where, 0, minimum=1)


def _number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if not is_number(value) or not 0 <= value < math.inf:
        raise ConfigError(f"{where}.{key}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _positive_number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = _number(table, key, where, default)
    if value == 0:
        raise ConfigError(f"{where}.{key}: expected a number > 0, got 0")
    return value


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected an array, got {type(value).__name__}")
    return value


def _names(table: Mapping[str, Any], key: str, where: str, what: str) -> tuple[str, ...] | None:
    """An optional array of non-empty strings; None when the key is absent."""
    if table.get(key) is None:
        return None
    items = _list(table[key], f"{where}.{key}")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}.{key}[{index}]: expected {what}, got {item!r}")
    return tuple(items)


def _check_unknown(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown setting (allowed: {', '.join(sorted(allowed))})")


# -- the three kinds of entries ----------------------------------------------------------------


def parse_deployment(raw: Any, where: str = "deployments[0]") -> DeploymentConfig:
    table = _table(raw, where)
    deployment_id = _str(table, "id", where)
    if not DEPLOYMENT_ID_PATTERN.match(deployment_id) or ".." in deployment_id or "//" in deployment_id:
        raise ConfigError(f"{where}.id: {deployment_id!r} is not a valid deployment id (letters, digits, . _ : / -)")
    backend = _str(table, "backend", where)
    if backend not in BACKENDS:
        raise ConfigError(f"{where}.backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    operations = _list(table.get("operations"), f"{where}.operations")
    if not operations:
        raise ConfigError(f"{where}.operations: list at least one operation ({', '.join(OPERATIONS)})")
    for index, operation in enumerate(operations):
        if operation not in OPERATIONS:
            raise ConfigError(
                f"{where}.operations[{index}]: unknown operation {operation!r} (known: {', '.join(OPERATIONS)})"
            )
    if len(set(operations)) != len(operations):
        raise ConfigError(f"{where}.operations: an operation is listed twice")
    params = _names(table, "params", where, "a parameter name")
    _names(table, "voices", where, "a voice name")  # read by the registry: a bare string would be its letters
    if "prices" in table:
        _table(table["prices"], f"{where}.prices")
    workspace_id = _opt_str(table, "workspace", where)
    return DeploymentConfig(
        id=deployment_id,
        backend=backend,
        operations=tuple(operations),
        table=dict(table),
        workspace_id=workspace_id,
        params=params,
    )


def _parse_workspace(raw: Any, where: str) -> WorkspaceConfig:
    table = _table(raw, where)
    _check_unknown(table, frozenset({"id", "name", "credits_cents"}), where)
    workspace_id = _str(table, "id", where)
    if not WORKSPACE_ID_PATTERN.match(workspace_id):
        raise ConfigError(f"{where}.id: {workspace_id!r} is not a valid workspace id (letters, digits, _ -)")
    return WorkspaceConfig(
        id=workspace_id,
        name=_str(table, "name", where, default=workspace_id),
        credits_cents=_number(table, "credits_cents", where, 0.0),
    )


def parse_pipeline(raw: Any, where: str = "pipelines[0]") -> PipelineConfig:
    table = _table(raw, where)
    _check_unknown(table, frozenset({"id", "workspace", "workspace_id", "deployments"}), where)
    pipeline_id = _str(table, "id", where)
    if not PIPELINE_ID_PATTERN.match(pipeline_id) or pipeline_id in RESERVED_PIPELINE_IDS:
        raise ConfigError(
            f"{where}.id: {pipeline_id!r} is not a valid pipeline id (one path segment: letters, digits, _ -)"
        )
    workspace_key = "workspace_id" if "workspace_id" in table else "workspace"
    workspace_id = _str(table, workspace_key, where)
    stages = _table(table.get("deployments"), f"{where}.deployments")
    _check_unknown(stages, frozenset(PIPELINE_STAGES), f"{where}.deployments")
    deployments = {stage: _str(stages, stage, f"{where}.deployments") for stage in PIPELINE_STAGES}
    return PipelineConfig(id=pipeline_id, workspace_id=workspace_id, deployments=deployments)


_SERVER_KEYS = frozenset(
    {
        "host",
        "port",
        "data_dir",
        "database_url",
        "public_base_url",
        "max_body_bytes",
        "redis_url",
        "shutdown_grace_seconds",
        "request_head_timeout_seconds",
        "request_body_timeout_seconds",
        "image_url_ttl_seconds",
        "idempotency_max_replay_bytes",
        "idempotency_retention_seconds",
        "topup_url",
        "access_log",
    }
)
_TOP_KEYS = frozenset({"server", "limits", "workspaces", "deployments", "pipelines", "webhooks"})


def settings_from_mapping(document: Mapping[str, Any], *, base: Settings | None = None) -> Settings:
    """Validate a parsed config document (TOML, or the engines' default as a dict)."""
    _check_unknown(document, _TOP_KEYS, "config")
    current = base or Settings()
    server = _table(document.get("server", {}), "server")
    _check_unknown(server, _SERVER_KEYS, "server")
    limits = _table(document.get("limits", {}), "limits")
    _check_unknown(limits, frozenset({"requests_per_minute", "tokens_per_minute"}), "limits")
    access_log = server.get("access_log", current.access_log)
    if not isinstance(access_log, bool):
        raise ConfigError(f"server.access_log: expected true or false, got {access_log!r}")

    deployments = tuple(
        parse_deployment(raw, f"deployments[{i}]")
        for i, raw in enumerate(_list(document.get("deployments"), "deployments"))
    )
    workspaces = tuple(
        _parse_workspace(raw, f"workspaces[{i}]")
        for i, raw in enumerate(_list(document.get("workspaces"), "workspaces"))
    )
    pipelines = tuple(
        parse_pipeline(raw, f"pipelines[{i}]") for i, raw in enumerate(_list(document.get("pipelines"), "pipelines"))
    )
    _check_duplicates([d.id for d in deployments], "deployments")
    _check_duplicates([w.id for w in workspaces], "workspaces")
    _check_duplicates([p.id for p in pipelines], "pipelines")
    deployment_ids = {d.id for d in deployments}
    workspace_ids = {w.id for w in workspaces}
    for i, pipeline in enumerate(pipelines):
        for stage, target in pipeline.deployments.items():
            if target not in deployment_ids:
                raise ConfigError(f"pipelines[{i}].deployments.{stage}: no deployment with id {target!r}")
        if pipeline.workspace_id not in workspace_ids:
            raise ConfigError(f"pipelines[{i}].workspace: no workspace with id {pipeline.workspace_id!r}")

    webhooks = dict(_table(document.get("webhooks", current.webhooks), "webhooks"))
    try:
        WebhookSettings.from_mapping(webhooks)
    except ValueError as exc:
        raise ConfigError(f"webhooks: {exc}") from None

    data_dir = server.get("data_dir")
    return Settings(
        host=_str(server, "host", "server", default=current.host),
        port=_int(server, "port", "server", current.port),
        data_dir=Path(_str(server, "data_dir", "server")) if data_dir is not None else current.data_dir,
        database_url=_database_url(_opt_str(server, "database_url", "server"), "server.database_url")
        or current.database_url,
        public_base_url=_http_url(_opt_str(server, "public_base_url", "server"), "server.public_base_url",
                                  use=_BASE_URL_USE) or current.public_base_url,
        max_body_bytes=_int(server, "max_body_bytes", "server", current.max_body_bytes, minimum=_MIN_BODY_BYTES),
        redis_url=_redis_url(_opt_str(server, "redis_url", "server"), "server.redis_url") or current.redis_url,
        shutdown_grace_seconds=_number(server, "shutdown_grace_seconds", "server", current.shutdown_grace_seconds),
        request_head_timeout_seconds=_positive_number(server, "request_head_timeout_seconds", "server",
                                                      current.request_head_timeout_seconds),
        request_body_timeout_seconds=_positive_number(server, "request_body_timeout_seconds", "server",
                                                      current.request_body_timeout_seconds),
        image_url_ttl_seconds=_int(server, "image_url_ttl_seconds", "server", current.image_url_ttl_seconds, minimum=1),
        idempotency_max_replay_bytes=_int(server, "idempotency_max_replay_bytes", "server",
                                          current.idempotency_max_replay_bytes),
        idempotency_retention_seconds=_int(server, "idempotency_retention_seconds", "server",
                                           current.idempotency_retention_seconds, minimum=1),
        topup_url=_http_url(_opt_str(server, "topup_url", "server"), "server.topup_url", query_ok=True,
                            use="is the link a 402 answer gives for adding credits") or current.topup_url,
        requests_per_minute=_opt_int(limits, "requests_per_minute", "limits"),
        tokens_per_minute=_opt_int(limits, "tokens_per_minute", "limits"),
        access_log=access_log,
        admin_token=current.admin_token,
        config_path=current.config_path,
        deployments=deployments,
        workspaces=workspaces,
        pipelines=pipelines,
        webhooks=webhooks,
        restart_tables={"server": dict(server), "limits": dict(limits), "webhooks": webhooks},
    )


def restart_only_changes(running: Settings, fresh: Settings) -> list[str]:
    """The ``table.key`` names whose value differs between two reads of a file, among those a reload cannot apply."""
    changed = []
    for table, before in running.restart_tables.items():
        after = fresh.restart_tables.get(table, {})
        changed += [f"{table}.{key}" for key in sorted({*before, *after}) if before.get(key) != after.get(key)]
    return changed


def _check_duplicates(ids: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if item in seen:
            raise ConfigError(f"{where}[{i}].id: {item!r} is defined twice")
        seen.add(item)


_ENV_OVERRIDES: tuple[tuple[str, str, type], ...] = (
    ("RUNINFRA_HOST", "host", str),
    ("RUNINFRA_PORT", "port", int),
    ("RUNINFRA_DATA_DIR", "data_dir", Path),
    ("RUNINFRA_DATABASE_URL", "database_url", str),
    ("RUNINFRA_PUBLIC_BASE_URL", "public_base_url", str),
    ("RUNINFRA_MAX_BODY_BYTES", "max_body_bytes", int),
    ("RUNINFRA_REDIS_URL", "redis_url", str),
)


#: A config file is a few kilobytes; anything near this is the wrong path (a log, a device), not a config.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def read_config_document(path: Path) -> dict[str, Any]:
    """The TOML document in ``path``; every way it can be unusable is a :class:`ConfigError` naming the file."""
    where = f"config file {str(path)!r}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)  # bounded: /dev/zero or a huge log must not eat the memory
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{where}: invalid TOML: arrays or inline tables nested too deeply") from None


def load_settings(
    config_path: Path | None = None,
    *,
    default_document: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """File (or ``default_document`` when there is no file), then environment, then ``overrides`` (CLI flags)."""
    env = os.environ if environ is None else environ
    document = read_config_document(config_path) if config_path is not None else default_document or {}
    settings = settings_from_mapping(document)
    values: dict[str, Any] = {}
    for name, attribute, kind in _ENV_OVERRIDES:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[attribute] = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected {kind.__name__}, got {raw!r}") from None
    if values.get("max_body_bytes", _MIN_BODY_BYTES) < _MIN_BODY_BYTES:
        raise ConfigError(f"RUNINFRA_MAX_BODY_BYTES: expected an integer >= {_MIN_BODY_BYTES}, "
                          f"got {values['max_body_bytes']}")
    _http_url(values.get("public_base_url"), "RUNINFRA_PUBLIC_BASE_URL", use=_BASE_URL_USE)
    _database_url(values.get("database_url"), "RUNINFRA_DATABASE_URL")
    _redis_url(values.get("redis_url"), "RUNINFRA_REDIS_URL")
    for attribute, value in (overrides or {}).items():
        if value is not None:
            values[attribute] = value
    admin_token = env.get("RUNINFRA_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 16:
        raise ConfigError("RUNINFRA_ADMIN_TOKEN: must be at least 16 characters")
    merged = {**settings.__dict__, **values, "admin_token": admin_token, "config_path": config_path}
    port = merged["port"]
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port: expected 0-65535, got {port!r}")
    return Settings(**merged)
