"""Pure parts: the signature header, the retry policy, settings, sealed secrets, the schema."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import stat
from email.utils import formatdate
from pathlib import Path

import pytest
import runinfra
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runinfra_gateway.store import Base, Database
from runinfra_gateway.webhooks.models import WebhookEndpoint, WebhookEvent
from runinfra_gateway.webhooks.retry import next_attempt_delay, parse_retry_after
from runinfra_gateway.webhooks.runtime import open_webhooks
from runinfra_gateway.webhooks.secret_box import MASTER_KEY_FILENAME, SecretBox, SecretBoxError
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.signing import sign, signature

from .conftest import BOTH_STORES, WORKSPACE


def test_signature_header_format() -> None:
    body = b'{"id":"evt_1"}'
    expected = hmac.new(b"whsec_a", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_a", 1_700_000_000, body) == expected
    assert sign("whsec_a", 1_700_000_000, body) == f"t=1700000000,v1={expected}"
    two = sign(["whsec_new", "whsec_old"], 1_700_000_000, body)
    assert two == (
        f"t=1700000000,v1={signature('whsec_new', 1_700_000_000, body)},"
        f"v1={signature('whsec_old', 1_700_000_000, body)}"
    )
    for bad_time in (-1, 1.5, True):
        with pytest.raises(ValueError, match="timestamp"):
            sign("whsec_a", bad_time, body)  # type: ignore[arg-type]
    for bad_secret in ("", [], ["whsec_a", ""]):
        with pytest.raises(ValueError, match="secret"):
            sign(bad_secret, 1, body)


def test_our_header_verifies_with_our_sdk_and_a_tampered_body_does_not() -> None:
    import time

    body = b'{"id":"evt_1","type":"webhook.test","created":1,"workspace":"w","data":{}}'
    header = sign(["whsec_new", "whsec_old"], int(time.time()), body)
    for secret in ("whsec_new", "whsec_old"):
        assert runinfra.construct_webhook_event(payload=body, signature_header=header, secret=secret)["id"] == "evt_1"
    with pytest.raises(runinfra.WebhookVerificationError):
        runinfra.construct_webhook_event(payload=body + b" ", signature_header=header, secret="whsec_new")
    stale = sign("whsec_new", int(time.time()) - 3600, body)
    with pytest.raises(runinfra.WebhookVerificationError):
        runinfra.construct_webhook_event(payload=body, signature_header=stale, secret="whsec_new")


def test_retry_schedule_jitter_and_retry_after() -> None:
    settings = WebhookSettings(retry_schedule=(0, 5, 300), jitter_fraction=0.2)
    rng = random.Random(7)
    for _ in range(50):
        delay = next_attempt_delay(1, settings, rng=rng)
        assert delay is not None
        assert 5 <= delay <= 6
    assert next_attempt_delay(3, settings) is None  # three attempts made: give up
    assert next_attempt_delay(1, settings, retry_after=120, rng=rng) == 120  # the receiver's wish is a floor
    capped = WebhookSettings(retry_schedule=(0, 1), jitter_fraction=0, max_retry_after_seconds=60)
    assert next_attempt_delay(1, capped, retry_after=10**9) == 60
    assert WebhookSettings().retry_schedule == (0, 5, 300, 1_800, 7_200, 18_000, 36_000, 86_400)


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 7 ", now) == 7
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now) == 0
    for bad in (None, "", "-5", "soon", "1.5", "Mon, 99 Foo 2020", "\xb2"):  # "²": a digit to str.isdigit()
        assert parse_retry_after(bad, now) is None


def test_settings_refuse_bad_values_by_name() -> None:
    for table, needle in (
        ({"bogus": 1}, "bogus"),
        ({"retry_schedule": []}, "retry_schedule"),
        ({"retry_schedule": [0, -1]}, "retry_schedule"),
        ({"retry_schedule": ["x"]}, "invalid"),
        ({"timeout_seconds": 0}, "timeout"),
        ({"timeout_seconds": 20, "lease_seconds": 10}, "lease_seconds"),
        ({"jitter_fraction": 2}, "jitter_fraction"),
        ({"allowed_networks": ["not a net"]}, "invalid"),
        ({"max_concurrency": 0}, "concurrency"),
        # int() took these: a string, a float cut to 8, true as 1
        ({"max_concurrency": "8"}, "max_concurrency must be a whole number"),
        ({"max_concurrency": 8.7}, "max_concurrency must be a whole number"),
        ({"max_concurrency": True}, "max_concurrency must be a whole number"),
        ({"max_concurrency": 10**9}, "from 1 to 1024"),
        # -1 read an endpoint's whole response, however large, into memory
        ({"response_excerpt_bytes": -1}, "response_excerpt_bytes must be a whole number from 0"),
        ({"response_excerpt_bytes": 10**12}, "response_excerpt_bytes"),
        # a bare string was iterated as its characters: "example.com" allowed hosts "e", "x", ...
        ({"allowed_hosts": "example.com"}, "allowed_hosts must be an array of strings"),
        ({"allowed_hosts": [1]}, "allowed_hosts must be an array of strings"),
        ({"allowed_networks": "10.0.0.0/8"}, "allowed_networks must be an array of strings"),
        ({"tls_ca_file": 5}, "tls_ca_file"),
        ({"master_key_file": ["a"]}, "master_key_file"),
    ):
        with pytest.raises(ValueError, match=needle):
            WebhookSettings.from_mapping(table)
    assert WebhookSettings.from_mapping({"max_concurrency": 3, "response_excerpt_bytes": 0}).max_concurrency == 3
    assert WebhookSettings.from_mapping({"allowed_networks": ["10.0.0.0/8"]}).allowed_networks[0].num_addresses == 2**24
    settings = WebhookSettings.from_mapping({"allowed_hosts": ["LocalHost.", "[::1]"], "timeout_seconds": 30})
    assert settings.allowed_hosts == frozenset({"localhost", "::1"})
    assert settings.lease_seconds > settings.timeout_seconds


def test_secret_box(tmp_path: Path) -> None:
    box = SecretBox.from_data_dir(tmp_path)
    key_file = tmp_path / MASTER_KEY_FILENAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    sealed = box.seal("whsec_abc", endpoint_id="we_1")
    assert b"whsec_abc" not in sealed
    assert box.open(sealed, endpoint_id="we_1") == "whsec_abc"
    assert SecretBox.from_data_dir(tmp_path).open(sealed, endpoint_id="we_1") == "whsec_abc"  # same key on restart
    with pytest.raises(SecretBoxError):
        box.open(sealed, endpoint_id="we_2")  # bound to its row
    with pytest.raises(SecretBoxError):
        box.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), endpoint_id="we_1")
    with pytest.raises(SecretBoxError):
        SecretBox(os.urandom(32)).open(sealed, endpoint_id="we_1")
    with pytest.raises(SecretBoxError):
        box.open(b"\x02short", endpoint_id="we_1")
    assert "whsec" not in repr(box)
    assert key_file.read_bytes().hex() not in repr(box)


def test_secrets_are_not_stored_in_the_clear(db: Database, box: SecretBox, tmp_path: Path) -> None:
    service = WebhookService(db, WebhookSettings(allowed_hosts=frozenset({"127.0.0.1"})), box)

    async def scenario() -> tuple[str, str]:
        created = await service.create_endpoint(workspace_id=WORKSPACE, url="http://127.0.0.1:9/hook")
        rotated = await service.rotate_secret(created.id, overlap_seconds=60)
        assert created.secret is not None
        assert rotated.secret is not None
        assert created.secret not in repr(created)
        return created.secret, rotated.secret

    old, new = asyncio.run(scenario())
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("gateway.sqlite3*"))
    assert old.encode() not in raw
    assert new.encode() not in raw
    assert b"we_" in raw  # the rows are there, only sealed


@BOTH_STORES
def test_models_match_the_migration(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    mine = [d for d in diff if "webhook" in repr(d)]
    assert mine == []


@BOTH_STORES
def test_events_after_2038_still_store(db: Database) -> None:
    after_2038 = 2**31 + 86_400  # a 32-bit INTEGER column of Unix seconds ends on 2038-01-19
    with db.session() as session:
        session.add(WebhookEvent(id="evt_2038", workspace_id=WORKSPACE, type="credits.low",
                                 created_at=after_2038, body=b"{}"))
    with db.session() as session:
        assert session.get(WebhookEvent, "evt_2038").created_at == after_2038


def test_the_gateway_config_validates_its_webhooks_table() -> None:
    from runinfra_gateway.settings import ConfigError, settings_from_mapping

    settings = settings_from_mapping({"webhooks": {"allowed_hosts": ["127.0.0.1"], "retry_schedule": [0, 1]}})
    assert WebhookSettings.from_mapping(settings.webhooks).retry_schedule == (0, 1)
    assert settings_from_mapping({}).webhooks == {}
    for table, needle in (({"bogus": 1}, "bogus"), ({"timeout_seconds": -1}, "timeout"), ("not a table", "webhooks")):
        with pytest.raises(ConfigError, match=needle):
            settings_from_mapping({"webhooks": table})


def test_replicas_share_secrets_through_one_master_key_file(db: Database, tmp_path: Path) -> None:
    key_file = tmp_path / "shared.key"
    key_file.write_bytes(os.urandom(32))
    table = {"allowed_hosts": ["127.0.0.1"], "master_key_file": str(key_file)}
    first = open_webhooks(db, data_dir=tmp_path / "replica-a", table=table)
    second = open_webhooks(db, data_dir=tmp_path / "replica-b", table=table)
    alone = open_webhooks(db, data_dir=tmp_path / "replica-c", table={"allowed_hosts": ["127.0.0.1"]})
    created = asyncio.run(first.service.create_endpoint(workspace_id=WORKSPACE, url="http://127.0.0.1:9/"))
    with db.session() as session:
        sealed = session.get(WebhookEndpoint, created.id)
        assert sealed is not None
        assert second.service.box.open(sealed.secret_sealed, endpoint_id=created.id) == created.secret
        with pytest.raises(SecretBoxError):
            alone.service.box.open(sealed.secret_sealed, endpoint_id=created.id)
    assert not (tmp_path / "replica-a" / MASTER_KEY_FILENAME).exists()
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 8)
    with pytest.raises(ValueError, match="at least 32"):
        open_webhooks(db, data_dir=tmp_path, table={"master_key_file": str(short)})
    with pytest.raises(ValueError, match="master_key_file"):
        WebhookSettings.from_mapping({"master_key_file": str(tmp_path / "missing.key")})
