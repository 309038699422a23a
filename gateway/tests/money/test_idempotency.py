"""Idempotency: replay without re-running or re-charging, in-use / reused / unavailable, retention, crashes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest
from runinfra_gateway.billing import Ledger, Prices, Usage
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.idempotency import IdempotencyStore, StoredResponse
from runinfra_gateway.idempotency.models import IdempotencyRecord
from runinfra_gateway.store import Database
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from .helpers import assert_ledger_consistent, charges_by_request

RESPONSE = StoredResponse(
    200, (("content-type", "application/json"), ("x-runinfra-cost-microcents", "50")), b'{"ok":1}'
)


def fingerprint(body: bytes, path: str = "/v1/chat/completions") -> bytes:
    return hashlib.sha256(b"POST\0" + path.encode() + b"\0" + body).digest()


def status_of(error: pytest.ExceptionInfo[GatewayError]) -> tuple[int, str]:
    return error.value.status, error.value.type


def record_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_in_use_reused_replay_and_scoping(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db)
        body = fingerprint(b'{"messages":[]}')
        assert await store.begin("key_1", "order-1", body, request_id="req_1") is None
        with pytest.raises(GatewayError) as in_use:
            await store.begin("key_1", "order-1", body)
        assert status_of(in_use) == (409, "idempotency_key_in_use")
        with pytest.raises(GatewayError) as reused_while_running:
            await store.begin("key_1", "order-1", fingerprint(b"other"))
        assert status_of(reused_while_running) == (422, "idempotency_key_reused")
        # Another API key's namespace is separate.
        assert await store.begin("key_2", "order-1", body) is None
        await store.abandon("key_2", "order-1")

        await store.complete("key_1", "order-1", RESPONSE)
        assert await store.begin("key_1", "order-1", body) == RESPONSE
        assert await store.begin("key_1", "order-1", body) == RESPONSE  # replays do not take the lock
        with pytest.raises(GatewayError) as reused:
            await store.begin("key_1", "order-1", fingerprint(b"other"))
        assert status_of(reused) == (422, "idempotency_key_reused")
        with pytest.raises(GatewayError) as other_path:
            await store.begin("key_1", "order-1", fingerprint(b'{"messages":[]}', "/v1/embeddings"))
        assert status_of(other_path) == (422, "idempotency_key_reused")
        # A fresh store (a restarted gateway) replays from SQL.
        assert await IdempotencyStore(db).begin("key_1", "order-1", body) == RESPONSE

    asyncio.run(scenario())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_too_large_response_is_recorded_but_not_replayable(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db, max_replay_bytes=8)
        body = fingerprint(b"{}")
        assert await store.begin("key_1", "big", body) is None
        await store.complete("key_1", "big", StoredResponse(200, (), b"x" * 9))
        with pytest.raises(GatewayError) as unavailable:
            await store.begin("key_1", "big", body)
        assert status_of(unavailable) == (409, "idempotency_replay_unavailable")
        with pytest.raises(GatewayError) as reused:
            await store.begin("key_1", "big", fingerprint(b"[]"))
        assert status_of(reused) == (422, "idempotency_key_reused")
        assert await store.begin("key_1", "small", body) is None
        await store.complete("key_1", "small", StoredResponse(201, (), b"x" * 8))
        assert await store.begin("key_1", "small", body) == StoredResponse(201, (), b"x" * 8)

    asyncio.run(scenario())
    with db.session() as session:
        big = session.get(IdempotencyRecord, ("key_1", "big"))
        assert big is not None
        assert (big.state, big.status, big.body) == ("too_large", 200, None)


def test_a_finished_stream_is_recorded_but_never_replayed(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db)
        body = fingerprint(b'{"stream":true}')
        assert await store.begin("key_1", "stream-1", body) is None
        await store.complete_without_replay("key_1", "stream-1", 200)
        with pytest.raises(GatewayError) as unavailable:
            await store.begin("key_1", "stream-1", body)
        assert status_of(unavailable) == (409, "idempotency_replay_unavailable")

    asyncio.run(scenario())


def test_a_completion_that_could_not_be_written_is_never_run_again(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db)
        assert await store.begin("key_1", "unwritten", fingerprint(b"{}"), request_id="req_1") is None
        with db.engine.begin() as connection:  # the store loses its table under it
            connection.exec_driver_sql("DROP TABLE idempotency_records")
        with pytest.raises(OperationalError):
            await store.complete("key_1", "unwritten", RESPONSE)
        # Charged, not recorded: this process refuses the key rather than run it again.
        with pytest.raises(GatewayError) as unavailable:
            await store.begin("key_1", "unwritten", fingerprint(b"{}"))
        assert status_of(unavailable) == (409, "idempotency_replay_unavailable")

    asyncio.run(scenario())


def test_abandon_frees_the_key(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db)
        body = fingerprint(b"{}")
        assert await store.begin("key_1", "retry-me", body) is None
        await store.abandon("key_1", "retry-me")
        assert record_count(db) == 0
        assert await store.begin("key_1", "retry-me", fingerprint(b"a new body is fine now")) is None
        await store.abandon("key_1", "retry-me")
        await store.abandon("key_1", "never-begun")  # harmless
        with pytest.raises(RuntimeError, match="begin"):
            await store.complete("key_1", "never-begun", RESPONSE)

    asyncio.run(scenario())


def test_concurrent_begins_let_exactly_one_through(db: Database) -> None:
    async def scenario() -> list[str]:
        store = IdempotencyStore(db)
        body = fingerprint(b"{}")

        async def attempt() -> str:
            try:
                return "proceed" if await store.begin("key_1", "race", body) is None else "replay"
            except GatewayError as error:
                return str(error.type)

        return await asyncio.gather(*(attempt() for _ in range(50)))

    outcomes = asyncio.run(scenario())
    assert outcomes.count("proceed") == 1
    assert outcomes.count("idempotency_key_in_use") == 49


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_records_expire_after_the_retention(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db, retention_seconds=2, purge_interval_seconds=3600)
        body = fingerprint(b"{}")
        for number in range(3):
            assert await store.begin("key_1", f"old-{number}", body) is None
            await store.complete("key_1", f"old-{number}", RESPONSE)
        last_made = time.time()
        assert await store.begin("key_1", "old-0", body) == RESPONSE
        await asyncio.sleep(max(0.0, last_made + 2.05 - time.time()))
        # Expired: as good as absent, so the key runs again (and a different body is no longer "reused").
        assert await store.begin("key_1", "old-0", fingerprint(b"new")) is None
        await store.complete("key_1", "old-0", RESPONSE)
        assert await store.purge_expired() == 2
        assert record_count(db) == 1

    asyncio.run(scenario())


def test_begin_purges_expired_records_on_its_own(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db, retention_seconds=1, purge_interval_seconds=0)
        assert await store.begin("key_1", "a", fingerprint(b"{}")) is None
        await store.complete("key_1", "a", RESPONSE)
        await asyncio.sleep(1.05)
        assert await store.begin("key_1", "b", fingerprint(b"{}")) is None
        assert record_count(db) == 1  # "a" went while "b" was begun

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "ключ", "line\nbreak", "tab\there", "nul\0byte", "del\x7f"],
)
def test_hostile_idempotency_keys_are_400s_naming_the_header(db: Database, key: str) -> None:
    with pytest.raises(GatewayError) as bad:
        asyncio.run(IdempotencyStore(db).begin("key_1", key, fingerprint(b"{}")))
    assert (bad.value.status, bad.value.param) == (400, "Idempotency-Key")
    assert record_count(db) == 0


def test_longest_valid_key_and_bad_fingerprints(db: Database) -> None:
    async def scenario() -> None:
        store = IdempotencyStore(db)
        assert await store.begin("key_1", "~" * 255, fingerprint(b"{}")) is None
        for bad in (b"", b"x" * 65, "not bytes"):
            with pytest.raises(ValueError, match="fingerprint"):
                await store.begin("key_1", "fp", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="key_id"):
            await store.begin("k" * 65, "fp", fingerprint(b"{}"))
        with pytest.raises(ValueError, match="request_id"):
            await store.begin("key_1", "fp", fingerprint(b"{}"), request_id="r" * 129)
        # A refused begin leaves no lock behind.
        assert await store.begin("key_1", "fp", fingerprint(b"{}")) is None

    asyncio.run(scenario())


async def serve(
    ledger: Ledger, store: IdempotencyStore, request_id: str, body: bytes
) -> tuple[StoredResponse, bool]:
    """The request path as core wires it: idempotency, hold, (backend), settle, complete."""
    prices = Prices.from_mapping({"input_per_1k_tokens": 0.01})
    replay = await store.begin("key_1", "pay-once", fingerprint(body), request_id=request_id)
    if replay is not None:
        return replay, True
    estimate = prices.estimate_microcents("embeddings", {"input": "hello"})
    hold = await ledger.hold("ws_a", estimate, request_id=request_id)
    usage = Usage(input_tokens=5)
    cost = await ledger.settle(
        hold, prices.charge_microcents("embeddings", usage), request_id=request_id, key_id="key_1",
        deployment_id="minilm", operation="embeddings", usage=usage, status=200,
    )  # fmt: skip
    response = StoredResponse(200, (("x-runinfra-cost-microcents", str(cost)),), b'{"data":[]}')
    await store.complete("key_1", "pay-once", response)
    return response, False


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_replay_is_never_charged_again(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = Ledger(db, journal_path=tmp_path / "credits", topup_url="https://x.example/topup")
        await ledger.start()
        await ledger.open_account("ws_a", 1)
        store = IdempotencyStore(db)
        first, replayed = await serve(ledger, store, "req_1", b'{"input":"hello"}')
        assert not replayed
        for number in range(2, 6):
            again, replayed = await serve(ledger, store, f"req_{number}", b'{"input":"hello"}')
            assert replayed
            assert again == first
        await ledger.close()

    asyncio.run(scenario())
    assert charges_by_request(db) == {"req_1": [50]}
    assert assert_ledger_consistent(db) == {"ws_a": 1_000_000 - 50}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_after_a_crash_an_abandoned_key_is_retried_but_a_charged_one_is_not(db: Database, tmp_path: Path) -> None:
    async def before_crash() -> None:
        ledger = Ledger(db, journal_path=tmp_path / "credits", topup_url="https://x.example/topup")
        await ledger.start()
        await ledger.open_account("ws_a", 1)
        store = IdempotencyStore(db)
        # Died in the backend: never charged.
        assert await store.begin("key_1", "unfinished", fingerprint(b"{}"), request_id="req_a") is None
        await ledger.hold("ws_a", 100, request_id="req_a")
        # Died between settle and complete: charged, response never stored.
        assert await store.begin("key_1", "paid", fingerprint(b"{}"), request_id="req_b") is None
        hold = await ledger.hold("ws_a", 100, request_id="req_b")
        await ledger.settle(
            hold, 70, request_id="req_b", key_id="key_1", deployment_id="d",
            operation="embeddings", usage=Usage(input_tokens=7), status=200,
        )  # fmt: skip
        await ledger.close()  # stands in for the journal replay a restart does after kill -9

    async def after_restart() -> None:
        store = IdempotencyStore(db)  # the in-memory locks died with the process
        assert await store.begin("key_1", "unfinished", fingerprint(b"{}"), request_id="req_c") is None
        with pytest.raises(GatewayError) as lost:
            await store.begin("key_1", "paid", fingerprint(b"{}"), request_id="req_d")
        assert status_of(lost) == (409, "idempotency_replay_unavailable")
        with pytest.raises(GatewayError) as still_lost:
            await store.begin("key_1", "paid", fingerprint(b"{}"), request_id="req_e")
        assert status_of(still_lost) == (409, "idempotency_replay_unavailable")

    asyncio.run(before_crash())
    asyncio.run(after_restart())
    assert charges_by_request(db) == {"req_b": [70]}


def test_expiry_is_an_absolute_wall_clock_time(db: Database) -> None:
    # Retention is wall-clock (it must survive restarts): records carry absolute expiry times.
    async def scenario() -> None:
        store = IdempotencyStore(db, retention_seconds=60)
        assert await store.begin("key_1", "t", fingerprint(b"{}")) is None

    before = time.time()
    asyncio.run(scenario())
    with db.session() as session:
        record = session.get(IdempotencyRecord, ("key_1", "t"))
        assert record is not None
        assert before + 60 <= record.expires_at <= time.time() + 60
