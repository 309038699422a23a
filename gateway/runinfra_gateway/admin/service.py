"""The admin service: plain functions over :class:`GatewayState`, shared by the admin API and the dashboard.

Each function validates its input (400 naming the field), writes through to
the database and updates the in-memory tables the request path reads, so a
new key works and a revoked key fails on the very next request.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.admin.events import emit
from runinfra_gateway.auth import KeyRecord, digest, display_prefix, new_api_key, new_id
from runinfra_gateway.deployment_secrets import seal_definition
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.real_numbers import is_number
from runinfra_gateway.registry import DeploymentRuntime, runtime_for
from runinfra_gateway.settings import (
    PIPELINE_STAGES,
    WORKSPACE_ID_PATTERN,
    ConfigError,
    parse_deployment,
    parse_pipeline,
)
from runinfra_gateway.state import GatewayState
from runinfra_gateway.store.models import ApiKey, DeploymentRecord, PipelineRecord, RequestLog, Workspace

__all__ = [
    "adjust_credits",
    "create_key",
    "create_pipeline",
    "create_workspace",
    "get_credits",
    "list_deployments",
    "list_keys",
    "list_pipelines",
    "list_workspaces",
    "recent_requests",
    "register_deployment",
    "revoke_key",
    "verify_deployment",
]

_SCOPES = ("workspace", "pipeline")
_MAX_CENTS = 1e12  # ten billion dollars: beyond it a typo, and micro-cents would outgrow 64-bit columns
_MAX_LIMIT = 2**31 - 1  # per-key rate limits live in 32-bit INTEGER columns (PostgreSQL)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _bad(message: str, param: str | None = None, code: str = "invalid_value") -> errors.GatewayError:
    return errors.invalid_request(message, code=code, param=param)


def _not_found(kind: str, ident: str) -> errors.GatewayError:
    return errors.GatewayError(404, "not_found_error", f"No {kind} {ident[:100]!r}.", code="not_found")


def _text(payload: Mapping[str, Any], name: str, *, required: bool = False, limit: int = 200) -> str | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise _bad(f"'{name}' is required.", name, "missing_field")
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise _bad(f"'{name}' must be a non-empty string of at most {limit} characters.", name)
    return value


def _number(payload: Mapping[str, Any], name: str, *, required: bool = False) -> float | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise _bad(f"'{name}' is required.", name, "missing_field")
        return None
    if not is_number(value) or value != value:
        raise _bad(f"'{name}' must be a number.", name)
    if abs(value) > _MAX_CENTS:
        raise _bad(f"'{name}' must be from -{_MAX_CENTS:,.0f} to {_MAX_CENTS:,.0f} cents.", name)
    return float(value)


def _positive_int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_LIMIT:
        raise _bad(f"'{name}' must be an integer from 1 to {_MAX_LIMIT}.", name)
    return value


def _only(payload: Mapping[str, Any], allowed: set[str]) -> None:
    for name in payload:
        if name not in allowed:
            raise errors.invalid_request(f"Unknown field {name!r}; this call takes {', '.join(sorted(allowed))}.",
                                         code="unsupported_parameter", param=name)


def _workspace_dict(row: Workspace) -> dict[str, Any]:
    return {"id": row.id, "object": "workspace", "name": row.name, "created": int(row.created.timestamp())}


def _key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "api_key",
        "prefix": row.prefix,
        "scope": row.scope,
        "workspace_id": row.workspace_id,
        "pipeline_id": row.pipeline_id,
        "name": row.name,
        "requests_per_minute": row.requests_per_minute,
        "tokens_per_minute": row.tokens_per_minute,
        "created": int(row.created.timestamp()),
        "revoked": row.revoked_at is not None,
        "revoked_at": int(row.revoked_at.timestamp()) if row.revoked_at else None,
    }


# -- workspaces --------------------------------------------------------------------------------


async def create_workspace(state: GatewayState, payload: Mapping[str, Any]) -> dict[str, Any]:
    _only(payload, {"name", "credits_cents", "id"})
    name = _text(payload, "name", required=True)
    assert name is not None
    credits = _number(payload, "credits_cents") or 0.0
    if credits < 0:
        raise _bad("'credits_cents' must not be negative.", "credits_cents")
    workspace_id = _text(payload, "id", limit=64) or new_id("ws")
    if not WORKSPACE_ID_PATTERN.match(workspace_id):
        raise _bad("'id' may hold letters, digits, '_' and '-' (at most 64).", "id")

    def create(session: Session) -> dict[str, Any]:
        if session.get(Workspace, workspace_id) is not None:
            raise errors.GatewayError(409, "invalid_request_error", f"Workspace {workspace_id!r} exists.",
                                      code="conflict", param="id")
        row = Workspace(id=workspace_id, name=name, created=_now())
        session.add(row)
        session.flush()
        return _workspace_dict(row)

    result = await state.db.run(create)
    await state.ledger.open_account(workspace_id, credits)
    return result


async def list_workspaces(state: GatewayState) -> list[dict[str, Any]]:
    def read(session: Session) -> list[dict[str, Any]]:
        return [_workspace_dict(row) for row in session.scalars(select(Workspace).order_by(Workspace.created))]

    return await state.db.run(read)


async def _require_workspace(state: GatewayState, workspace_id: str) -> None:
    def exists(session: Session) -> bool:
        return session.get(Workspace, workspace_id) is not None

    if not await state.db.run(exists):
        raise _not_found("workspace", workspace_id)


# -- keys --------------------------------------------------------------------------------------


async def create_key(state: GatewayState, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A new key; the answer is the only place its secret ever appears."""
    _only(payload, {"scope", "workspace_id", "pipeline_id", "name", "requests_per_minute", "tokens_per_minute"})
    scope = payload.get("scope", "workspace")
    if scope not in _SCOPES:
        raise _bad("'scope' must be 'workspace' or 'pipeline'.", "scope")
    name = _text(payload, "name") or ""
    rpm = _positive_int(payload, "requests_per_minute")
    tpm = _positive_int(payload, "tokens_per_minute")
    pipeline_id = _text(payload, "pipeline_id", limit=64)
    workspace_id = _text(payload, "workspace_id", limit=64)
    if scope == "pipeline":
        if pipeline_id is None:
            raise _bad("A pipeline-scoped key needs 'pipeline_id'.", "pipeline_id", "missing_field")
        pipeline = state.pipelines.get(pipeline_id)
        if pipeline is None:
            raise _not_found("pipeline", pipeline_id)
        if workspace_id is not None and workspace_id != pipeline.workspace_id:
            raise _bad("The pipeline belongs to another workspace.", "workspace_id")
        workspace_id = pipeline.workspace_id
    else:
        if pipeline_id is not None:
            raise _bad("'pipeline_id' is only for scope 'pipeline'.", "pipeline_id")
        if workspace_id is None:
            raise _bad("A workspace-scoped key needs 'workspace_id'.", "workspace_id", "missing_field")
    assert workspace_id is not None
    await _require_workspace(state, workspace_id)
    secret = new_api_key()
    key_id = new_id("key")

    def create(session: Session) -> tuple[dict[str, Any], KeyRecord]:
        row = ApiKey(
            id=key_id,
            workspace_id=workspace_id,
            scope=scope,
            pipeline_id=pipeline_id,
            name=name,
            prefix=display_prefix(secret),
            secret_hash=digest(secret),
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            created=_now(),
        )
        session.add(row)
        session.flush()
        emit(session, workspace_id=workspace_id, type="key.created",
             data={"key_id": key_id, "prefix": row.prefix, "scope": scope, "pipeline_id": pipeline_id})
        return _key_dict(row), KeyRecord.from_row(row)

    result, record = await state.db.run(create)
    state.keys.add(record)  # after the commit: a key that was never stored must never authenticate
    return {**result, "secret": secret}


async def list_keys(state: GatewayState, workspace_id: str | None = None) -> list[dict[str, Any]]:
    def read(session: Session) -> list[dict[str, Any]]:
        query = select(ApiKey).order_by(ApiKey.created)
        if workspace_id is not None:
            query = query.where(ApiKey.workspace_id == workspace_id)
        return [_key_dict(row) for row in session.scalars(query)]

    return await state.db.run(read)


async def revoke_key(state: GatewayState, key_id: str) -> dict[str, Any]:
    def revoke(session: Session) -> dict[str, Any]:
        row = session.get(ApiKey, key_id)
        if row is None:
            raise _not_found("key", key_id)
        if row.revoked_at is None:
            row.revoked_at = _now()
            emit(session, workspace_id=row.workspace_id, type="key.revoked",
                 data={"key_id": row.id, "prefix": row.prefix})
        return _key_dict(row)

    # Drop it from the cache first: from this instant no request authenticates with it.
    state.keys.remove(key_id)
    return await state.db.run(revoke)


# -- credits -----------------------------------------------------------------------------------


def _balance_dict(state: GatewayState, workspace_id: str) -> dict[str, Any]:
    balance = state.ledger.balance(workspace_id)
    return {"workspace_id": workspace_id, "balance_cents": balance.balance_cents, "held_cents": balance.held_cents}


async def get_credits(state: GatewayState, workspace_id: str) -> dict[str, Any]:
    await _require_workspace(state, workspace_id)
    return _balance_dict(state, workspace_id)


async def adjust_credits(state: GatewayState, workspace_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    _only(payload, {"cents"})
    cents = _number(payload, "cents", required=True)
    assert cents is not None
    await _require_workspace(state, workspace_id)
    try:
        await state.ledger.adjust(workspace_id, cents)
    except ValueError as exc:
        raise _bad(str(exc), "cents") from None
    return _balance_dict(state, workspace_id)


# -- deployments -------------------------------------------------------------------------------


async def list_deployments(state: GatewayState) -> list[dict[str, Any]]:
    return [runtime.admin_object() for runtime in sorted(state.registry.all(), key=lambda r: r.id)]


async def persist_deployment(state: GatewayState, runtime: DeploymentRuntime) -> None:
    """Record a deployment's definition and verification outcome (and tell webhooks when it changed)."""
    definition = dict(runtime.config.table)
    if state.secret_box is not None:
        definition = seal_definition(state.secret_box, definition)

    def write(session: Session) -> None:
        row = session.get(DeploymentRecord, runtime.id)
        previous = row.status if row is not None else None
        if row is None:
            row = DeploymentRecord(id=runtime.id, source=runtime.source, definition=definition, created=_now())
            session.add(row)
        row.source = runtime.source
        row.definition = definition
        row.status = runtime.status
        row.last_error = runtime.last_error
        row.verified_at = runtime.verified_at
        if runtime.status in ("active", "failed") and runtime.status != previous:
            emit(session, workspace_id=runtime.workspace_id,
                 type="deployment.verified" if runtime.active else "deployment.failed",
                 data={"deployment_id": runtime.id, "operations": list(runtime.operations),
                       "error": runtime.last_error})

    await state.db.run(write)
    state.metrics.deployment_active.labels(runtime.id).set(1 if runtime.active else 0)


_UPSTREAM_FIELDS = {
    "id", "backend", "base_url", "base_urls", "model", "operations", "api_key", "prices", "params", "voices",
    "timeout_seconds", "workspace", "workspace_id",
}


async def register_deployment(state: GatewayState, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Add or replace an upstream deployment and verify it now; it is active only if every probe passed."""
    _only(payload, _UPSTREAM_FIELDS)
    if payload.get("backend", "upstream") != "upstream":
        raise _bad("Only upstream deployments can be registered over the API.", "backend")
    table = {k: v for k, v in payload.items() if k != "workspace_id"}
    table["backend"] = "upstream"
    if payload.get("workspace_id") is not None:
        table["workspace"] = payload["workspace_id"]
    try:
        config = parse_deployment(table, "deployment")
        runtime = runtime_for(config, "admin")
        from runinfra_gateway.registry import build_backend

        backend = build_backend(config)
    except (ConfigError, ValueError) as exc:
        text = str(exc)
        param = text.split(":", 1)[0].removeprefix("deployment.") if ":" in text else None
        raise _bad(text, param) from None
    existing = state.registry.get(config.id)
    if existing is not None and existing.source == "config":
        await backend.aclose()
        raise errors.GatewayError(409, "invalid_request_error",
                                  f"Deployment {config.id!r} comes from the config file; change it there.",
                                  code="conflict", param="id")
    runtime.backend = backend
    await state.registry.replace(runtime)
    return runtime.admin_object()


async def verify_deployment(state: GatewayState, deployment_id: str) -> dict[str, Any]:
    if state.registry.get(deployment_id) is None:
        raise _not_found("deployment", deployment_id)
    runtime = await state.registry.verify(deployment_id)
    return runtime.admin_object()


# -- pipelines ---------------------------------------------------------------------------------


async def list_pipelines(state: GatewayState) -> list[dict[str, Any]]:
    return [pipeline.as_dict() for pipeline in state.pipelines.all()]


async def create_pipeline(state: GatewayState, payload: Mapping[str, Any]) -> dict[str, Any]:
    _only(payload, {"id", "workspace_id", "deployments"})
    try:
        config = parse_pipeline(dict(payload), "pipeline")
    except ConfigError as exc:
        text = str(exc)
        param = text.split(":", 1)[0].removeprefix("pipeline.")
        raise _bad(text, param) from None
    await _require_workspace(state, config.workspace_id)
    for stage in PIPELINE_STAGES:
        if state.registry.get(config.deployments[stage]) is None:
            raise _bad(f"No deployment {config.deployments[stage]!r}.", f"deployments.{stage}")
    if state.pipelines.get(config.id) is not None:
        raise errors.GatewayError(409, "invalid_request_error", f"Pipeline {config.id!r} exists.",
                                  code="conflict", param="id")

    def create(session: Session) -> Pipeline:
        row = PipelineRecord(id=config.id, workspace_id=config.workspace_id, created=_now(), **config.deployments)
        session.add(row)
        session.flush()
        return Pipeline.from_row(row)

    try:
        pipeline = await state.db.run(create)
    except IntegrityError:
        raise errors.GatewayError(409, "invalid_request_error", f"Pipeline {config.id!r} exists.",
                                  code="conflict", param="id") from None
    state.pipelines.add(pipeline)
    return pipeline.as_dict()


# -- usage -------------------------------------------------------------------------------------


async def recent_requests(
    state: GatewayState, *, workspace_id: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest request log rows (flushes the pending batch first so the view is current)."""
    limit = max(1, min(int(limit), 1000))
    await state.request_log.flush()

    def read(session: Session) -> list[dict[str, Any]]:
        query = select(RequestLog).order_by(RequestLog.id.desc()).limit(limit)
        if workspace_id is not None:
            query = query.where(RequestLog.workspace_id == workspace_id)
        return [
            {
                "request_id": row.request_id,
                "client_request_id": row.client_request_id,
                "workspace_id": row.workspace_id,
                "key_id": row.key_id,
                "deployment_id": row.deployment_id,
                "operation": row.operation,
                "method": row.method,
                "path": row.path,
                "status": row.status,
                "error_type": row.error_type,
                "latency_ms": row.latency_ms,
                "input_tokens": row.input_tokens,
                "output_tokens": row.output_tokens,
                "cost_microcents": row.cost_microcents,
                "created": datetime.fromtimestamp(row.created_at, timezone.utc).isoformat(),
            }
            for row in session.scalars(query)
        ]

    return await state.db.run(read)
