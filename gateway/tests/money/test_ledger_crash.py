"""kill -9 in the middle of a burst: after restart the SQL ledger sums to the balance and
every settled request is charged exactly once (orphaned holds are released, not charged)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from runinfra_gateway.billing import JournalCorrupt, Ledger
from runinfra_gateway.billing.ledger_sql import read_checkpoint
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.idempotency import IdempotencyStore
from runinfra_gateway.idempotency.models import IdempotencyRecord
from runinfra_gateway.store import Database
from sqlalchemy import select

from .helpers import (
    assert_ledger_consistent,
    charges_by_request,
    hold_and_release_counts,
    ledger_state,
    orphan_releases,
)

CHILD = Path(__file__).with_name("ledger_child.py")
INITIAL_MICROCENTS = 100_000_000  # 100 cents


def run_until_killed(db_url: str, journal: Path, prefix: str, settles: int, *extra: str) -> dict[str, int]:
    """Start the child, let it settle ``settles`` requests, SIGKILL it mid-burst; return what it settled."""
    return run_child(db_url, journal, prefix, settles, *extra)[0]


def run_child(
    db_url: str, journal: Path, prefix: str, settles: int, *extra: str
) -> tuple[dict[str, int], dict[str, tuple[str, int]]]:
    """As above; also returns the idempotency keys the child completed (key -> request id, charge)."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), db_url, str(journal), prefix, *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    settled: dict[str, int] = {}
    completed: dict[str, tuple[str, int]] = {}
    stuck: list[str] = []

    def take(line: str) -> None:
        kind, name, *rest = line.split()
        if kind == "stuck":
            stuck.append(name)
        elif kind == "settled":
            settled[name] = int(rest[0])
        elif kind == "completed":
            completed[name] = (rest[0], int(rest[1]))

    try:
        assert child.stdout.readline().strip() == "ready"
        while len(settled) < settles or not stuck:
            line = child.stdout.readline()
            assert line, "the child exited before it was killed"
            take(line)
        os.kill(child.pid, signal.SIGKILL)
        # Lines the child flushed before it died are still in the pipe.
        for line in child.stdout:
            take(line)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return settled, completed


def recover(db: Database, journal: Path) -> tuple[int, int]:
    async def restart() -> tuple[int, int]:
        ledger = Ledger(db, journal_path=journal, topup_url="https://gateway.example/topup")
        await ledger.start()
        balance = ledger.balance("ws_crash")
        await ledger.close()
        return balance.balance_microcents, balance.held_microcents

    return asyncio.run(restart())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_kill_9_mid_burst_neither_loses_nor_doubles_a_charge(db: Database, tmp_path: Path) -> None:
    journal = tmp_path / "journal" / "credits"
    settled = run_until_killed(db.url, journal, "a", 400, "--open", str(INITIAL_MICROCENTS / 1_000_000))
    # Crash twice: the second run starts by recovering the first crash, then dies mid-burst too.
    settled.update(run_until_killed(db.url, journal, "b", 400))
    # A record the kernel never finished (only a power cut does this) is skipped, not fatal.
    segments = sorted(journal.parent.glob("credits.0*"))
    assert segments, "the killed child left its journal behind"
    with segments[-1].open("ab") as torn:
        torn.write(b'{"k":"hold","w":"ws_crash","a":5')

    with db.session() as session:
        checkpoint = read_checkpoint(session)
    journal_records = [record for segment in segments for record in segment.read_bytes().split(b"\n")[:-1]]
    journal_last = max(int(orjson.loads(record)["s"]) for record in journal_records)
    assert checkpoint < journal_last, "the kill left records that only the journal had"

    balance, held = recover(db, journal)

    balances = assert_ledger_consistent(db)
    charges = charges_by_request(db)
    assert held == 0
    assert ledger_state(db)["ws_crash"][2] == 0, "no hold is left open after recovery"
    assert balance == balances["ws_crash"], "memory and SQL agree after recovery"
    for request_id, charge in settled.items():
        assert charges.get(request_id) == [charge], f"{request_id}: settled {charge}, ledger {charges.get(request_id)}"
    assert all(len(amounts) == 1 for amounts in charges.values()), "a request was charged twice"
    holds, releases = hold_and_release_counts(db)
    assert holds == releases == {hold_id: 1 for hold_id in holds}, "every hold is closed exactly once"
    assert orphan_releases(db) > 0, "holds in flight at the kill were released by recovery"
    assert balance == INITIAL_MICROCENTS - sum(amount for amounts in charges.values() for amount in amounts)
    # Recovery wrote everything to SQL and removed the journal; a second restart changes nothing.
    assert not list(journal.parent.glob("credits.0*"))
    assert recover(db, journal) == (balance, 0)
    assert charges_by_request(db) == charges


def test_a_corrupt_record_inside_the_journal_stops_the_start(db: Database, tmp_path: Path) -> None:
    journal = tmp_path / "credits"
    (tmp_path / "credits.00000000000000000001").write_bytes(
        b'{"s":1,"k":"open","w":"ws","a":5,"t":0}\nnot json\n{"s":3,"k":"open","w":"ws2","a":5,"t":0}\n'
    )
    ledger = Ledger(db, journal_path=journal, topup_url="https://gateway.example/topup")
    with pytest.raises(JournalCorrupt, match="line 2"):
        asyncio.run(ledger.start())
    # Nothing was applied and the journal is untouched for the operator to inspect.
    assert ledger_state(db) == {}
    assert (tmp_path / "credits.00000000000000000001").exists()


def test_a_record_torn_mid_copy_is_skipped_only_at_the_end_of_the_newest_segment(
    db: Database, tmp_path: Path
) -> None:
    """kill -9 inside the copy can leave any bytes of the last record unwritten (zeros), its newline included."""
    good = b'{"s":1,"k":"open","w":"ws","a":5,"t":0}\n'
    torn = b'{"s":2,"k":"open","w":"ws2",\x00\x00\x00\x00\x00\n' + b"\x00" * 4000
    (tmp_path / "credits.00000000000000000001").write_bytes(good + torn)

    async def start() -> int:
        ledger = Ledger(db, journal_path=tmp_path / "credits", topup_url="https://gateway.example/topup")
        await ledger.start()
        balances = (ledger.balance("ws").balance_microcents, ledger.balance("ws2").balance_microcents)
        await ledger.close()
        return balances[0] + balances[1]

    assert asyncio.run(start()) == 5
    assert ledger_state(db) == {"ws": (5, 5, 0, 0)}

    # The same bytes in an older segment are corruption, not a crash: the start refuses.
    (tmp_path / "credits.00000000000000000010").write_bytes(good + torn)
    (tmp_path / "credits.00000000000000000020").write_bytes(b'{"s":20,"k":"open","w":"ws3","a":5,"t":0}\n')
    with pytest.raises(JournalCorrupt, match="00010: line 2"):
        asyncio.run(start())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_kill_9_mid_request_leaves_idempotency_consistent_with_the_ledger(db: Database, tmp_path: Path) -> None:
    journal = tmp_path / "journal" / "credits"
    settled, completed = run_child(db.url, journal, "i", 300, "--open", "100", "--idempotent")
    recover(db, journal)
    charges = charges_by_request(db)
    assert all(len(amounts) == 1 for amounts in charges.values()), "a request was charged twice"
    with db.session() as session:
        keys = [(row.idempotency_key, row.request_id) for row in session.scalars(select(IdempotencyRecord))]
    assert set(completed) <= {key for key, _ in keys}

    async def retry_every_key() -> dict[str, int]:
        store = IdempotencyStore(db)  # a restarted gateway: no in-memory locks survive
        outcomes = {"replayed": 0, "lost": 0, "retried": 0}
        for key, request_id in keys:
            fingerprint = hashlib.sha256(key.encode()).digest()
            refusal: str | None = None
            try:
                replay = await store.begin("key_crash", key, fingerprint, request_id=f"retry-{request_id}")
            except GatewayError as error:
                refusal = error.type
            if refusal is not None:
                # Died between settle and complete: paid once, so never run (or charged) again.
                assert refusal == "idempotency_replay_unavailable"
                assert request_id in charges, f"{key} refused although {request_id} was never charged"
                assert charges[request_id] == [settled.get(request_id, charges[request_id][0])]
                outcomes["lost"] += 1
                continue
            if replay is None:
                # Died before settle: never charged, so the key may run again.
                assert request_id not in charges, f"{key} retried although {request_id} was charged"
                await store.abandon("key_crash", key)
                outcomes["retried"] += 1
                continue
            assert replay.body.decode() == request_id
            cost = int(dict(replay.headers)["x-runinfra-cost-microcents"])
            assert charges[request_id] == [cost], "the replayed cost is the one charge"
            outcomes["replayed"] += 1
        return outcomes

    outcomes = asyncio.run(retry_every_key())
    assert outcomes["replayed"] >= len(completed) > 0
    assert outcomes["retried"] > 0, "requests in flight at the kill are retryable"
    for key, (request_id, charge) in completed.items():
        assert charges[request_id] == [charge], key
    assert_ledger_consistent(db)
