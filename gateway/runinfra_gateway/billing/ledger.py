"""The credit ledger: balances in memory, every movement journaled, SQL written in batches.

Hot path: :meth:`Ledger.hold`, :meth:`Ledger.settle` and :meth:`Ledger.release`
check and update an in-memory account and copy one record into the memory-mapped
journal; they never wait for the database or make a system call. They run on the
event loop without awaiting between the check and the update, so concurrent
requests can never overspend. A writer task copies journal records into the
append-only ``credit_ledger`` table in batches, on a timer
(``flush_interval_seconds``) or once ``batch_size`` records are waiting.

Crash guarantees (kill -9 at any instant):

* A hold, settle, release or adjustment whose call returned is in the journal, and
  so is every record added before it. :meth:`Ledger.start` replays every record SQL
  has not seen, exactly once (the checkpoint advances in the same transaction as the
  rows).
* A hold with no settle or release when the process died is *orphaned*: the
  request never had its charge recorded, so its response was never sent as a
  charged success. ``start()`` releases it in full: it is not charged.
* A request is charged at most once: settle and release act only on an open hold,
  and a second call for the same hold does nothing.

Charges never drive a balance negative: a settle charges the actual price capped at
what the hold plus the remaining balance allow (the uncapped price is kept in the
row's ``actual_microcents``). Holds are upper bounds, so the cap bites only when a
backend reports more usage than the request allowed for.

The in-memory balances make one gateway process the owner of the ledger (the
journal lock enforces it). Several replicas sharing PostgreSQL would each need
their own allotment or SQL-side holds; that is not built.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.billing.journal import Journal
from runinfra_gateway.billing.ledger_sql import apply_records, read_checkpoint, read_snapshot
from runinfra_gateway.billing.prices import Usage, cents_to_microcents, microcents_to_cents
from runinfra_gateway.store import Database

__all__ = ["Balance", "Hold", "Ledger"]

logger = logging.getLogger("runinfra_gateway.billing")

# Column widths of the ledger tables: checked before journaling so no record can poison the writer.
_MAX_ID = {"workspace_id": 64, "request_id": 128, "key_id": 64, "deployment_id": 128, "operation": 32}
_MAX_MICROCENTS = 10**17  # a billion dollars; far below int64


@dataclass(frozen=True)
class Balance:
    """What a workspace can spend (holds already taken out) and what its open holds reserve."""

    workspace_id: str
    balance_cents: float
    held_cents: float
    balance_microcents: int = 0
    held_microcents: int = 0


@dataclass(frozen=True)
class Hold:
    """Credits reserved for one request until it is settled or released."""

    hold_id: int
    workspace_id: str
    microcents: int
    request_id: str


def _sequence(record: dict[str, Any]) -> int:
    return int(record["s"])


class _Account:
    __slots__ = ("available", "held")

    def __init__(self, available: int, held: int) -> None:
        self.available = available
        self.held = held


def _check_id(name: str, value: str) -> None:
    if not isinstance(value, str) or len(value) > _MAX_ID[name]:
        raise ValueError(f"{name} must be a string of at most {_MAX_ID[name]} characters")


def _check_amount(name: str, microcents: int) -> None:
    if isinstance(microcents, bool) or not isinstance(microcents, int) or not 0 <= microcents <= _MAX_MICROCENTS:
        raise ValueError(f"{name} must be an integer number of micro-cents between 0 and {_MAX_MICROCENTS}")


class Ledger:
    """Per-workspace credits: hold before a call, settle at actual usage after it."""

    def __init__(
        self,
        db: Database,
        *,
        journal_path: Path,
        topup_url: str,
        flush_interval_seconds: float = 0.25,
        batch_size: int = 2000,
        journal_segment_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._db = db
        self._journal = Journal(Path(journal_path), segment_bytes=journal_segment_bytes)
        self._topup_url = topup_url
        self._flush_interval = flush_interval_seconds
        self._batch_size = batch_size
        self._accounts: dict[str, _Account] = {}
        self._open: dict[int, Hold] = {}
        self._pending: list[dict[str, Any]] = []
        self._seq = 0
        self._checkpoint = 0
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        # What SQL holds per workspace (balance, held) after the last committed batch: the
        # credits.low/depleted hook compares it with the batch's result without reading it back.
        self._sql_accounts: dict[str, tuple[int, int]] = {}
        self._started = False
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay the journal tail into SQL, release orphaned holds, start the batch writer."""
        if self._started:
            return
        self._journal.lock()
        try:
            await self._recover()
        except BaseException:
            self._journal.close()
            raise
        self._started = True
        self._writer = asyncio.create_task(self._write_loop(), name="runinfra-ledger-writer")

    async def _recover(self) -> None:
        checkpoint = await self._db.run(read_checkpoint)
        records = await asyncio.to_thread(lambda: list(self._journal.read()))
        records.sort(key=lambda record: int(record["s"]))
        tail = [record for record in records if record["s"] > checkpoint]
        if tail:
            checkpoint = (await self._db.run(functools.partial(apply_records, records=tail))).checkpoint
            logger.info("credit journal: replayed %d record(s) into the ledger", len(tail))
        self._checkpoint = checkpoint
        self._seq = max([checkpoint] + [int(record["s"]) for record in records])
        snapshot = await self._db.run(read_snapshot)
        self._accounts = {w: _Account(balance, held) for w, (balance, held) in snapshot.accounts.items()}
        self._sql_accounts = dict(snapshot.accounts)
        # SQL now holds every record: the old segments can go, and new records start a fresh one.
        self._journal.remove_all()
        for hold_id, workspace_id, amount, request_id in snapshot.open_holds:
            self._open[hold_id] = Hold(hold_id, workspace_id, amount, request_id)
        for hold in list(self._open.values()):
            self._release(hold, orphaned=True)
        if snapshot.open_holds:
            logger.warning("credit ledger: released %d hold(s) orphaned by a crash", len(snapshot.open_holds))
        await self._flush_pending()

    async def close(self) -> None:
        """Stop the writer and write everything to SQL; the journal is removed once SQL has it all."""
        if not self._started:
            return
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        try:
            await self.flush()
            self._journal.remove_all()
        finally:
            self._journal.close()
            self._started = False

    async def flush(self) -> None:
        """Write every journaled record to SQL now (the writer does this on its own within its interval)."""
        await self._flush_pending()

    # -- accounts ----------------------------------------------------------------------------------

    def balance(self, workspace_id: str) -> Balance:
        """The workspace's balance from memory (no I/O); an unknown workspace has nothing."""
        account = self._accounts.get(workspace_id)
        if account is None:
            return Balance(workspace_id, 0.0, 0.0, 0, 0)
        return Balance(
            workspace_id,
            microcents_to_cents(account.available),
            microcents_to_cents(account.held),
            account.available,
            account.held,
        )

    async def open_account(self, workspace_id: str, initial_cents: float = 0) -> None:
        """Create the workspace's account with ``initial_cents``; an existing account is left as it is."""
        self._require_started()
        _check_id("workspace_id", workspace_id)
        initial = cents_to_microcents(initial_cents, what="initial_cents")
        _check_amount("initial_cents", initial)
        if workspace_id in self._accounts:
            return
        self._append({"k": "open", "w": workspace_id, "a": initial})
        self._accounts[workspace_id] = _Account(initial, 0)

    async def adjust(self, workspace_id: str, cents: float) -> Balance:
        """Admin top-up (positive) or debit (negative, stopping at zero), recorded in the ledger."""
        self._require_started()
        _check_id("workspace_id", workspace_id)
        requested = cents_to_microcents(cents, what="cents")
        _check_amount("cents", abs(requested))
        account = self._accounts.get(workspace_id)
        available = account.available if account is not None else 0
        applied = requested if requested >= 0 else -min(-requested, available)
        if available + applied > _MAX_MICROCENTS:
            raise ValueError(f"cents: the balance would exceed {_MAX_MICROCENTS} micro-cents")
        self._append({"k": "adjust", "w": workspace_id, "a": applied, "q": requested})
        if account is None:
            self._accounts[workspace_id] = account = _Account(0, 0)
        account.available += applied
        return self.balance(workspace_id)

    # -- the request path --------------------------------------------------------------------------

    async def hold(self, workspace_id: str, microcents: int, *, request_id: str) -> Hold:
        """Reserve ``microcents`` or raise 402 ``insufficient_credits``."""
        self._require_started()
        _check_amount("microcents", microcents)
        _check_id("request_id", request_id)
        _check_id("workspace_id", workspace_id)
        account = self._accounts.get(workspace_id)
        available = account.available if account is not None else 0
        if available < microcents:
            raise errors.insufficient_credits(
                microcents_to_cents(available), microcents_to_cents(microcents), self._topup_url
            )
        if account is None:  # a free request from a workspace that never had credits
            self._append({"k": "open", "w": workspace_id, "a": 0})
            self._accounts[workspace_id] = account = _Account(0, 0)
        seq = self._append({"k": "hold", "w": workspace_id, "a": microcents, "r": request_id}, hold=True)
        account.available -= microcents
        account.held += microcents
        hold = Hold(seq, workspace_id, microcents, request_id)
        self._open[seq] = hold
        return hold

    async def settle(
        self,
        hold: Hold,
        microcents: int,
        *,
        request_id: str,
        key_id: str,
        deployment_id: str,
        operation: str,
        usage: Usage,
        status: int,
    ) -> int:
        """Charge the actual price (capped so the balance stays >= 0), release the rest; returns the charge.

        Journaled before it returns. A hold already settled or released is left alone (returns 0).
        """
        _check_amount("microcents", microcents)
        _check_id("request_id", request_id)
        _check_id("key_id", key_id)
        _check_id("deployment_id", deployment_id)
        _check_id("operation", operation)
        self._require_started()
        if hold.hold_id not in self._open:
            return 0
        account = self._accounts[hold.workspace_id]
        charge = min(microcents, hold.microcents + account.available)
        usage_fields = [usage.input_tokens, usage.output_tokens, usage.images, usage.audio_seconds, usage.characters]
        self._append(
            {
                "k": "settle",
                "w": hold.workspace_id,
                "h": hold.hold_id,
                "a": hold.microcents,
                "c": charge,
                "x": microcents,
                "r": request_id,
                "key": key_id,
                "dep": deployment_id,
                "op": operation,
                "u": usage_fields,
                "st": status,
            }
        )
        del self._open[hold.hold_id]
        account.held -= hold.microcents
        account.available += hold.microcents - charge
        return charge

    async def release(self, hold: Hold) -> None:
        """The request failed: release the whole hold, charge nothing. A closed hold is left alone."""
        self._require_started()
        if hold.hold_id in self._open:
            self._release(hold, orphaned=False)

    def _release(self, hold: Hold, *, orphaned: bool) -> None:
        record: dict[str, Any] = {"k": "release", "w": hold.workspace_id, "h": hold.hold_id, "a": hold.microcents}
        record["r"] = hold.request_id
        if orphaned:
            record["o"] = 1
        self._append(record)
        del self._open[hold.hold_id]
        account = self._accounts[hold.workspace_id]
        account.held -= hold.microcents
        account.available += hold.microcents

    # -- journal and batch writer ----------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started or self._closing:
            raise RuntimeError("the credit ledger is not running (start() not called, or closed)")

    def _append(self, record: dict[str, Any], *, hold: bool = False) -> int:
        """Journal one record (it survives kill -9 from here on) and queue it for SQL.

        Raises ``OSError`` if the journal cannot take it; then nothing has changed.
        """
        seq = self._seq + 1
        record["s"] = seq
        record["t"] = time.time()
        if hold:
            record["h"] = seq
        self._journal.append(seq, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        self._seq = seq
        self._pending.append(record)
        if len(self._pending) >= self._batch_size:
            self._wake.set()
        return seq

    async def _write_loop(self) -> None:
        failures = 0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._flush_interval)
            self._wake.clear()
            try:
                await self._flush_pending()
                failures = 0
            except Exception:
                # The records are still journaled and queued: nothing is lost, retry with back-off.
                failures += 1
                logger.exception("credit ledger: batch write failed (%d in a row); retrying", failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))

    async def _flush_pending(self) -> None:
        """Write every record queued when this is called, in batches of at most ``batch_size``.

        Records added while a batch is being written wait for the next call: looping until the
        queue is empty would, under load, turn the timer into back-to-back tiny batches whose fixed
        cost (a transaction, the account and checkpoint updates) dwarfs their rows.
        """
        through = self._seq
        async with self._flush_lock:
            while self._pending and self._pending[0]["s"] <= through:
                # The queue is in sequence order: the batch is a prefix, found by bisection (not a loop
                # on the event loop over up to batch_size records).
                end = bisect.bisect_right(
                    self._pending, through, hi=min(len(self._pending), self._batch_size), key=_sequence
                )
                batch = self._pending[:end]
                applied = await self._db.run(
                    functools.partial(
                        apply_records, records=batch, checkpoint=self._checkpoint, accounts=self._sql_accounts
                    )
                )
                self._checkpoint = applied.checkpoint
                self._sql_accounts.update(applied.accounts)
                del self._pending[: len(batch)]
                self._journal.discard_through(self._checkpoint)
