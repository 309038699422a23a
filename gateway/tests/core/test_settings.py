"""Config validation: every mistake is refused with the key that is wrong."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from runinfra_gateway.engines import default_config
from runinfra_gateway.settings import MAX_CONFIG_BYTES, ConfigError, load_settings, settings_from_mapping

DEPLOYMENT = {"id": "m", "backend": "upstream", "base_url": "http://127.0.0.1:1/v1", "operations": ["embeddings"]}


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ({"server": {"port": "80"}}, "server.port"),
        ({"server": {"prot": 80}}, "server.prot"),
        ({"server": {"max_body_bytes": 10}}, "server.max_body_bytes"),
        ({"server": {"access_log": "yes"}}, "server.access_log"),
        ({"server": {"request_head_timeout_seconds": 0}}, "server.request_head_timeout_seconds"),
        ({"server": {"request_head_timeout_seconds": "30"}}, "server.request_head_timeout_seconds"),
        ({"server": {"request_body_timeout_seconds": -1}}, "server.request_body_timeout_seconds"),
        ({"limits": {"requests_per_minute": 0}}, "limits.requests_per_minute"),
        ({"colour": "red"}, "config.colour"),
        ({"deployments": {"id": "x"}}, "deployments: expected an array"),
        ({"deployments": [{**DEPLOYMENT, "backend": "magic"}]}, "deployments[0].backend"),
        ({"deployments": [{**DEPLOYMENT, "operations": []}]}, "deployments[0].operations"),
        ({"deployments": [{**DEPLOYMENT, "operations": ["embeddings", "chat"]}]}, "deployments[0].operations[1]"),
        ({"deployments": [{**DEPLOYMENT, "id": "a/../b"}]}, "deployments[0].id"),
        ({"deployments": [{**DEPLOYMENT, "params": ["ok", 3]}]}, "deployments[0].params[1]"),
        # the registry lists a deployment's voices: a bare string was listed as its letters
        ({"deployments": [{**DEPLOYMENT, "voices": "alloy"}]}, "deployments[0].voices: expected an array"),
        ({"deployments": [{**DEPLOYMENT, "voices": ["alloy", ""]}]}, "deployments[0].voices[1]"),
        ({"deployments": [DEPLOYMENT, DEPLOYMENT]}, "deployments[1].id"),
        ({"workspaces": [{"id": "w x"}]}, "workspaces[0].id"),
        ({"workspaces": [{"id": "w", "credits_cents": -1}]}, "workspaces[0].credits_cents"),
        # TOML writes nan and inf: nan passes every range check, inf overflowed int() at start (a traceback).
        ({"workspaces": [{"id": "w", "credits_cents": math.nan}]}, "workspaces[0].credits_cents"),
        ({"server": {"shutdown_grace_seconds": math.inf}}, "server.shutdown_grace_seconds"),
        ({"server": {"request_body_timeout_seconds": math.inf}}, "server.request_body_timeout_seconds"),
        ({"webhooks": {"timeout_seconds": math.nan}}, "webhooks.timeout_seconds must be a finite number"),
        ({"webhooks": {"retry_schedule": [0, math.inf]}}, "webhooks.retry_schedule must be a finite number"),
        ({"webhooks": {"retry_schedule": "0, 5"}}, "webhooks.retry_schedule must be an array"),
        ({"webhooks": {"poll_interval_seconds": "1"}}, "webhooks.poll_interval_seconds must be a finite number"),
        ({"workspaces": [{"id": "w"}], "deployments": [DEPLOYMENT], "pipelines": [
            {"id": "models", "workspace": "w",
             "deployments": {"speech_to_text": "m", "llm": "m", "text_to_speech": "m"}}]}, "pipelines[0].id"),
        ({"workspaces": [{"id": "w"}], "deployments": [DEPLOYMENT], "pipelines": [
            {"id": "p", "workspace": "w",
             "deployments": {"speech_to_text": "m", "llm": "nope", "text_to_speech": "m"}}]},
         "pipelines[0].deployments.llm"),
        ({"deployments": [DEPLOYMENT], "pipelines": [
            {"id": "p", "workspace": "ghost",
             "deployments": {"speech_to_text": "m", "llm": "m", "text_to_speech": "m"}}]},
         "pipelines[0].workspace"),
    ],
)
def test_bad_values_name_their_key(document: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping(document)
    assert where in str(refused.value)


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "ftp://gw.example.com", "https://", "https://user:hunter2@gw.example.com",
    "https://gw.example.com/?x=1", "https://gw.example.com/#top", "https://gw.example.com\r\nX: y",
    "https://gw.example.com /v1", "https://[::1", "https://gw.example.com:99999", "https://gw.example.com:0",
    "https://gw.éxample.com",
])
def test_a_public_base_url_that_cannot_prefix_links_is_refused(url: str) -> None:
    for source, load in (
        ("server.public_base_url", lambda: settings_from_mapping({"server": {"public_base_url": url}})),
        ("RUNINFRA_PUBLIC_BASE_URL", lambda: load_settings(environ={"RUNINFRA_PUBLIC_BASE_URL": url})),
    ):
        with pytest.raises(ConfigError, match=f"^{source}: expected an http") as refused:
            load()
        assert "hunter2" not in str(refused.value)


def test_a_topup_url_may_carry_a_query_but_must_be_a_link() -> None:
    kept = "https://billing.example.com/topup?account=team-7"
    assert settings_from_mapping({"server": {"topup_url": kept}}).resolved_topup_url == kept
    for url in ("javascript:alert(1)", "https://user:hunter2@billing.example.com", "billing.example.com"):
        with pytest.raises(ConfigError, match=r"^server\.topup_url: expected an http") as refused:
            settings_from_mapping({"server": {"topup_url": url}})
        assert "hunter2" not in str(refused.value)


def test_public_base_urls_that_prefix_links_are_kept() -> None:
    for url in ("https://gw.example.com", "http://10.0.0.5:8080/runinfra/", "https://[2001:db8::1]:8443"):
        assert settings_from_mapping({"server": {"public_base_url": url}}).public_base_url == url
        assert load_settings(environ={"RUNINFRA_PUBLIC_BASE_URL": url}).public_base_url == url


@pytest.mark.parametrize(("key", "env", "url", "expected"), [
    ("database_url", "RUNINFRA_DATABASE_URL", "nonsense://u:hunter2@db/x", "not a database URL"),
    ("database_url", "RUNINFRA_DATABASE_URL", "postgresql://u:hunter2@[::1/x", "not a database URL"),
    ("database_url", "RUNINFRA_DATABASE_URL", "u:hunter2@db", "not a database URL"),
    ("redis_url", "RUNINFRA_REDIS_URL", "http://u:hunter2@cache:6379", "expected a URL starting with redis://"),
])
def test_store_urls_are_checked_at_load_without_showing_them(key: str, env: str, url: str, expected: str) -> None:
    for source, load in (
        (f"server.{key}", lambda: settings_from_mapping({"server": {key: url}})),
        (env, lambda: load_settings(environ={env: url})),
    ):
        with pytest.raises(ConfigError, match=f"^{re.escape(source)}: {expected}") as refused:
            load()
        assert "hunter2" not in str(refused.value)


def test_store_urls_in_use_are_kept() -> None:
    for url in ("postgresql+psycopg://runinfra:pw@db:5432/runinfra", "postgresql://runinfra@db/runinfra",
                "sqlite:////var/lib/runinfra/runinfra.sqlite3"):
        assert load_settings(environ={"RUNINFRA_DATABASE_URL": url}).database_url == url
    for url in ("redis://cache:6379/0", "rediss://:pw@cache:6380", "unix:///run/redis.sock"):
        assert settings_from_mapping({"server": {"redis_url": url}}).redis_url == url


def test_the_environment_is_held_to_the_files_limits() -> None:
    for raw in ("-1", "0", "1023"):
        with pytest.raises(ConfigError, match="RUNINFRA_MAX_BODY_BYTES: expected an integer >= 1024"):
            load_settings(environ={"RUNINFRA_MAX_BODY_BYTES": raw})
    assert load_settings(environ={"RUNINFRA_MAX_BODY_BYTES": "1024"}).max_body_bytes == 1024


def test_file_env_and_flags_layer(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n', encoding="utf-8")
    settings = load_settings(path, environ={"RUNINFRA_PORT": "9100", "RUNINFRA_DATA_DIR": str(tmp_path)})
    assert settings.port == 9100
    assert settings.host == "0.0.0.0"
    assert settings.data_dir == tmp_path
    assert settings.base_url == "http://127.0.0.1:9100"
    flagged = load_settings(path, environ={"RUNINFRA_PORT": "9100"}, overrides={"port": 9200})
    assert flagged.port == 9200
    with pytest.raises(ConfigError, match="RUNINFRA_PORT"):
        load_settings(path, environ={"RUNINFRA_PORT": "many"})
    with pytest.raises(ConfigError, match="RUNINFRA_ADMIN_TOKEN"):
        load_settings(path, environ={"RUNINFRA_ADMIN_TOKEN": "short"})


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(broken, environ={})
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(binary, environ={})


def test_hostile_files_are_refused_by_name_without_reading_them_whole(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"deep\.toml.*nested too deeply"):
        load_settings(deep, environ={})
    inline = tmp_path / "inline.toml"
    inline.write_text("x = " + "{a = " * 50_000 + "1" + "}" * 50_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(inline, environ={})
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "a" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"huge\.toml.*larger than 4 MiB"):
        load_settings(huge, environ={})
    with pytest.raises(ConfigError, match="larger than"):  # endless: only the limit is read
        load_settings(Path("/dev/zero"), environ={})
    with pytest.raises(ConfigError, match="config file"):
        load_settings(tmp_path, environ={})  # a directory
    nul = tmp_path / "nul.toml"
    nul.write_bytes(b'[server]\nhost = "a\x00b"\n')
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(nul, environ={})


def test_the_admin_token_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    settings = load_settings(None, environ={"RUNINFRA_ADMIN_TOKEN": "ria_" + "s" * 40})
    assert settings.admin_token == "ria_" + "s" * 40
    assert "ssssssss" not in repr(settings)


def test_the_embedded_default_is_a_valid_config() -> None:
    settings = load_settings(None, default_document=default_config(), environ={})
    operations = {op for d in settings.deployments for op in d.operations}
    assert operations == {"chat.completions", "responses", "embeddings", "images.generate", "audio.speech",
                          "audio.transcriptions"}
    assert [w.id for w in settings.workspaces] == ["default"]
    assert settings.workspaces[0].credits_cents > 0
    assert [p.id for p in settings.pipelines] == ["voice"]
