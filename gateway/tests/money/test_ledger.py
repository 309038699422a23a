"""The credit ledger in one process: holds, settlement, 402s, concurrency, admin adjustments, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runinfra_gateway.billing import Hold, JournalLocked, Ledger, Prices, Usage
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.store import Database

from .helpers import assert_ledger_consistent, charges_by_request

TOPUP = "https://gateway.example/dashboard/credits"
PRICES = Prices.from_mapping({"input_per_1k_tokens": 0.01, "output_per_1k_tokens": 0.02})


def make_ledger(db: Database, tmp_path: Path, **options: float) -> Ledger:
    return Ledger(db, journal_path=tmp_path / "journal" / "credits", topup_url=TOPUP, **options)  # type: ignore[arg-type]


async def settle(ledger: Ledger, hold: Hold, usage: Usage, status: int = 200) -> int:
    return await ledger.settle(
        hold,
        PRICES.charge_microcents("chat.completions", usage),
        request_id=hold.request_id,
        key_id="key_1",
        deployment_id="smollm2",
        operation="chat.completions",
        usage=usage,
        status=status,
    )


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_hold_settle_release_are_exact_and_the_ledger_sums_to_the_balance(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        await ledger.open_account("ws_a", 1)  # one cent
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}
        estimate = PRICES.estimate_microcents("chat.completions", body)
        hold = await ledger.hold("ws_a", estimate, request_id="req_1")
        assert ledger.balance("ws_a").balance_microcents == 1_000_000 - estimate
        assert ledger.balance("ws_a").held_microcents == estimate
        charged = await settle(ledger, hold, Usage(input_tokens=3, output_tokens=1))
        assert charged == 3 * 10 + 20
        balance = ledger.balance("ws_a")
        assert (balance.balance_microcents, balance.held_microcents) == (1_000_000 - 50, 0)
        assert balance.balance_cents == pytest.approx(0.99995)
        failed = await ledger.hold("ws_a", estimate, request_id="req_2")
        await ledger.release(failed)
        assert ledger.balance("ws_a").balance_microcents == 1_000_000 - 50
        await ledger.close()

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_a": 1_000_000 - 50}
    assert charges_by_request(db) == {"req_1": [50]}


def test_insufficient_credits_midway_through_a_sequence(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        await ledger.open_account("ws_a", 0.0001)  # 100 micro-cents
        served = 0
        while ledger.balance("ws_a").balance_microcents >= 30:
            hold = await ledger.hold("ws_a", 30, request_id=f"req_{served}")
            assert await ledger.settle(
                hold, 30, request_id=hold.request_id, key_id="k", deployment_id="d",
                operation="embeddings", usage=Usage(input_tokens=3), status=200,
            ) == 30  # fmt: skip
            served += 1
        with pytest.raises(GatewayError) as refused:
            await ledger.hold("ws_a", 30, request_id="req_refused")
        assert refused.value.status == 402
        body = refused.value.body()["error"]
        assert body["type"] == "insufficient_credits"
        assert body["current_balance_cents"] == pytest.approx(0.00001)  # 10 micro-cents left
        assert body["required_cents"] == pytest.approx(0.00003)
        assert body["topup_url"] == TOPUP
        assert served == 3
        assert ledger.balance("ws_a").balance_microcents == 10
        with pytest.raises(GatewayError) as unknown:
            await ledger.hold("ws_nobody", 1, request_id="req_x")
        assert unknown.value.status == 402
        free = await ledger.hold("ws_never_funded", 0, request_id="req_free")  # a free deployment needs no credits
        assert await ledger.settle(
            free, 0, request_id="req_free", key_id="k", deployment_id="d",
            operation="embeddings", usage=Usage(input_tokens=3), status=200,
        ) == 0  # fmt: skip
        await ledger.close()

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_a": 10, "ws_never_funded": 0}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_concurrent_holds_never_overspend(db: Database, tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int]:
        ledger = make_ledger(db, tmp_path, flush_interval_seconds=0.001, batch_size=50)
        await ledger.start()
        await ledger.open_account("ws_a", 0.01)  # 10_000 micro-cents: room for 100 holds of 100
        admitted = 0
        refused = 0

        async def request(number: int) -> None:
            nonlocal admitted, refused
            await asyncio.sleep(0)
            try:
                hold = await ledger.hold("ws_a", 100, request_id=f"req_{number}")
            except GatewayError:
                refused += 1
                return
            admitted += 1
            assert ledger.balance("ws_a").balance_microcents >= 0
            await asyncio.sleep(0.001)
            await settle(ledger, hold, Usage(input_tokens=10))  # 100 micro-cents: the whole hold

        await asyncio.gather(*(request(number) for number in range(500)))
        await ledger.close()
        return admitted, refused

    admitted, refused = asyncio.run(scenario())
    assert (admitted, refused) == (100, 400)
    assert assert_ledger_consistent(db) == {"ws_a": 0}
    charges = charges_by_request(db)
    assert len(charges) == 100
    assert all(amounts == [100] for amounts in charges.values())


def test_settle_twice_and_release_after_settle_charge_once(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        await ledger.open_account("ws_a", 1)
        hold = await ledger.hold("ws_a", 1000, request_id="req_1")
        assert await settle(ledger, hold, Usage(input_tokens=10)) == 100
        assert await settle(ledger, hold, Usage(input_tokens=10)) == 0
        await ledger.release(hold)
        released = await ledger.hold("ws_a", 1000, request_id="req_2")
        await ledger.release(released)
        assert await settle(ledger, released, Usage(input_tokens=10)) == 0
        assert ledger.balance("ws_a").balance_microcents == 1_000_000 - 100
        await ledger.close()

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_a": 1_000_000 - 100}
    assert charges_by_request(db) == {"req_1": [100]}


def test_a_charge_above_the_hold_is_capped_so_the_balance_never_goes_negative(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        await ledger.open_account("ws_a", 0.0005)  # 500 micro-cents
        hold = await ledger.hold("ws_a", 200, request_id="req_1")
        # The backend reports more than the hold allowed for: 700 > 200 held + 300 left.
        assert await settle(ledger, hold, Usage(input_tokens=70)) == 500
        assert ledger.balance("ws_a").balance_microcents == 0
        await ledger.close()

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_a": 0}
    assert charges_by_request(db) == {"req_1": [500]}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_admin_adjustments_are_ledger_rows_and_debits_stop_at_zero(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        topped = await ledger.adjust("ws_new", 2.5)  # an account is opened by its first top-up
        assert topped.balance_microcents == 2_500_000
        assert (await ledger.adjust("ws_new", -1)).balance_cents == pytest.approx(1.5)
        hold = await ledger.hold("ws_new", 1_000_000, request_id="req_1")
        # The debit cannot take what a request in flight holds.
        assert (await ledger.adjust("ws_new", -100)).balance_microcents == 0
        assert ledger.balance("ws_new").held_microcents == 1_000_000
        await ledger.release(hold)
        assert ledger.balance("ws_new").balance_microcents == 1_000_000
        await ledger.open_account("ws_new", 50)  # exists already: unchanged
        assert ledger.balance("ws_new").balance_microcents == 1_000_000
        for bad in (float("nan"), float("inf"), "5", True, 1e18, 0.0000001):
            with pytest.raises(ValueError, match="cents"):
                await ledger.adjust("ws_new", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="initial_cents"):
            await ledger.open_account("ws_other", -1)
        with pytest.raises(ValueError, match="workspace_id"):
            await ledger.adjust("w" * 65, 1)
        with pytest.raises(ValueError, match="microcents"):
            await ledger.hold("ws_new", -1, request_id="req_neg")
        with pytest.raises(ValueError, match="request_id"):
            await ledger.hold("ws_new", 1, request_id="r" * 129)
        await ledger.close()

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_new": 1_000_000}


def test_balances_survive_a_clean_restart_and_the_journal_is_locked(db: Database, tmp_path: Path) -> None:
    async def first() -> None:
        ledger = make_ledger(db, tmp_path)
        await ledger.start()
        with pytest.raises(JournalLocked):
            await make_ledger(db, tmp_path).start()
        await ledger.open_account("ws_a", 3)
        hold = await ledger.hold("ws_a", 5000, request_id="req_1")
        await settle(ledger, hold, Usage(output_tokens=100))
        await ledger.close()
        with pytest.raises(RuntimeError, match="not running"):
            await ledger.hold("ws_a", 1, request_id="req_late")

    async def second() -> None:
        ledger = make_ledger(db, tmp_path)
        with pytest.raises(RuntimeError, match="not running"):
            await ledger.hold("ws_a", 1, request_id="req_early")
        await ledger.start()
        assert ledger.balance("ws_a").balance_microcents == 3_000_000 - 2000
        await ledger.close()

    asyncio.run(first())
    assert not list((tmp_path / "journal").glob("credits.0*")), "a clean close leaves no journal segment"
    asyncio.run(second())
    assert assert_ledger_consistent(db) == {"ws_a": 3_000_000 - 2000}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_journal_segments_rotate_and_are_deleted_once_written(db: Database, tmp_path: Path) -> None:
    async def scenario() -> int:
        ledger = make_ledger(db, tmp_path, journal_segment_bytes=2000, batch_size=20)
        await ledger.start()
        await ledger.open_account("ws_a", 100)
        for number in range(200):
            hold = await ledger.hold("ws_a", 100, request_id=f"req_{number}")
            await settle(ledger, hold, Usage(input_tokens=1))
        await ledger.flush()
        segments = len(list((tmp_path / "journal").glob("credits.0*")))
        await ledger.close()
        return segments

    segments_after_flush = asyncio.run(scenario())
    assert segments_after_flush == 1  # sealed segments go once SQL has them; only the active one is left
    assert assert_ledger_consistent(db) == {"ws_a": 100_000_000 - 200 * 10}
    assert len(charges_by_request(db)) == 200


def test_a_journal_that_cannot_take_a_record_refuses_the_movement_and_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path, journal_segment_bytes=600)
        await ledger.start()
        await ledger.open_account("ws_a", 1)
        hold = await ledger.hold("ws_a", 100, request_id="req_ok")
        before = ledger.balance("ws_a")
        # The next segment cannot be created: its directory is gone and a file stands in its place.
        journal_dir = tmp_path / "journal"
        for path in journal_dir.iterdir():
            path.unlink()
        journal_dir.rmdir()
        journal_dir.write_bytes(b"")
        taken = 0
        refusal: OSError | None = None
        for number in range(20):  # more records than the mapped segment has room for
            try:
                await ledger.hold("ws_a", 100, request_id=f"req_{number}")
            except OSError as error:
                refusal = error
                break
            taken += 1
        assert isinstance(refusal, NotADirectoryError)
        assert 0 < taken < 20
        refused = ledger.balance("ws_a")
        assert refused.held_microcents == before.held_microcents + 100 * taken, "the refused hold reserved nothing"
        assert refused.balance_microcents == before.balance_microcents - 100 * taken
        with pytest.raises(NotADirectoryError):
            await settle(ledger, hold, Usage(input_tokens=1))
        assert ledger.balance("ws_a") == refused, "a refused settle leaves the hold open and the balance as it was"

    asyncio.run(scenario())


def test_a_failing_database_loses_nothing_and_the_writer_catches_up(db: Database, tmp_path: Path) -> None:
    async def scenario() -> None:
        ledger = make_ledger(db, tmp_path, flush_interval_seconds=0.01)
        await ledger.start()
        await ledger.open_account("ws_a", 1)
        await ledger.flush()
        with db.engine.begin() as connection:  # the ledger table goes away under the writer
            connection.exec_driver_sql("ALTER TABLE credit_ledger RENAME TO credit_ledger_away")
        for number in range(20):
            hold = await ledger.hold("ws_a", 100, request_id=f"req_{number}")
            await settle(ledger, hold, Usage(input_tokens=5))
        await asyncio.sleep(0.3)  # the writer fails and backs off; requests were not affected
        assert ledger.balance("ws_a").balance_microcents == 1_000_000 - 20 * 50
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE credit_ledger_away RENAME TO credit_ledger")
        await ledger.close()  # the retried batch, then the rest

    asyncio.run(scenario())
    assert assert_ledger_consistent(db) == {"ws_a": 1_000_000 - 20 * 50}
    assert charges_by_request(db) == {f"req_{number}": [50] for number in range(20)}
