"""Applying journal records to the ledger tables, and reading the ledger back.

One function, :func:`apply_records`, serves both the batch writer and crash
recovery: it skips records at or below the checkpoint and advances it in the same
transaction, so a batch is applied exactly once however often it is offered.

The batch writer passes what it already knows (the checkpoint and each account as
SQL holds it after the last committed batch, both kept in memory by the ledger, the
only writer of these tables), so a batch is written without reading anything back:
one executemany UPDATE of the accounts, multi-row INSERTs of the rows, the open
holds and the checkpoint. Recovery passes nothing and the same function reads them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from runinfra_gateway.billing.models import CreditAccount, JournalCheckpoint, LedgerEntry, OpenHold
from runinfra_gateway.store.bulk import insert_rows
from runinfra_gateway.webhooks.credits import credit_events

__all__ = ["AppliedBatch", "LedgerSnapshot", "apply_records", "ledger_sums", "read_checkpoint", "read_snapshot"]

_CHECKPOINT_ID = 1


@dataclass(frozen=True)
class LedgerSnapshot:
    """Every account's balance and held amount, and the holds still open, as SQL has them."""

    accounts: dict[str, tuple[int, int]]
    open_holds: list[tuple[int, str, int, str]]  # hold_id, workspace_id, amount, request_id


@dataclass(frozen=True)
class AppliedBatch:
    """The checkpoint after a batch, and each account the batch touched as SQL now holds it."""

    checkpoint: int
    accounts: dict[str, tuple[int, int]]  # workspace_id -> (balance, held) micro-cents


def read_checkpoint(session: Session) -> int:
    seq = session.scalar(select(JournalCheckpoint.seq).where(JournalCheckpoint.id == _CHECKPOINT_ID))
    return int(seq or 0)


def read_snapshot(session: Session) -> LedgerSnapshot:
    accounts = {
        row.workspace_id: (int(row.balance_microcents), int(row.held_microcents))
        for row in session.execute(
            select(CreditAccount.workspace_id, CreditAccount.balance_microcents, CreditAccount.held_microcents)
        )
    }
    holds = [
        (int(row.hold_id), row.workspace_id, int(row.amount_microcents), row.request_id)
        for row in session.execute(
            select(OpenHold.hold_id, OpenHold.workspace_id, OpenHold.amount_microcents, OpenHold.request_id).order_by(
                OpenHold.hold_id
            )
        )
    ]
    return LedgerSnapshot(accounts, holds)


_ENTRY_COLUMNS = (
    "seq",
    "workspace_id",
    "kind",
    "amount_microcents",
    "hold_id",
    "request_id",
    "key_id",
    "deployment_id",
    "operation",
    "status",
    "actual_microcents",
    "usage",
    "created_at",
)


def _entry(record: dict[str, Any], kind: str, amount: int) -> tuple[Any, ...]:
    if kind == "charge":
        usage = record.get("u")
        return (
            record["s"],
            record["w"],
            kind,
            amount,
            record.get("h"),
            record.get("r"),
            record.get("key"),
            record.get("dep"),
            record.get("op"),
            record.get("st"),
            record.get("x"),
            orjson.dumps(usage).decode() if usage is not None else None,
            record["t"],
        )
    return (record["s"], record["w"], kind, amount, record.get("h"), record.get("r"), *_NO_CHARGE, record["t"])


_NO_CHARGE = (None, None, None, None, None, None)


_LEDGER_ENTRIES = cast(Table, LedgerEntry.__table__)
_CREDIT_ACCOUNTS = cast(Table, CreditAccount.__table__)
_MOVE_ACCOUNT = (
    update(_CREDIT_ACCOUNTS)
    .where(_CREDIT_ACCOUNTS.c.workspace_id == bindparam("w"))
    .values(
        balance_microcents=_CREDIT_ACCOUNTS.c.balance_microcents + bindparam("d_balance"),
        held_microcents=_CREDIT_ACCOUNTS.c.held_microcents + bindparam("d_held"),
        updated_at=bindparam("now"),
    )
)


def _read_accounts(session: Session, workspaces: list[str]) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(CreditAccount.workspace_id, CreditAccount.balance_microcents, CreditAccount.held_microcents).where(
            CreditAccount.workspace_id.in_(workspaces)
        )
    )
    return {row.workspace_id: (int(row.balance_microcents), int(row.held_microcents)) for row in rows}


def apply_records(
    session: Session,
    records: list[dict[str, Any]],
    *,
    checkpoint: int | None = None,
    accounts: Mapping[str, tuple[int, int]] | None = None,
) -> AppliedBatch:
    """Write ``records`` (in sequence order) as ledger rows.

    ``checkpoint`` and ``accounts`` are what SQL holds now, if the caller knows (the
    batch writer does); otherwise they are read here (recovery).
    """
    done = read_checkpoint(session) if checkpoint is None else checkpoint
    fresh = [record for record in records if record["s"] > done]
    if not fresh:
        return AppliedBatch(done, {})
    # A hold opened and closed within this batch nets to zero: only its charge (if any) becomes a row.
    # Holds that stay open across a batch boundary get their hold row and, later, their release row.
    opened = {record["h"]: record for record in fresh if record["k"] == "hold"}
    closed = {record["h"] for record in fresh if record["k"] in ("release", "settle")}
    entries: list[tuple[Any, ...]] = []
    balance_delta: dict[str, int] = defaultdict(int)
    held_delta: dict[str, int] = defaultdict(int)
    for record in fresh:
        kind, workspace, amount = record["k"], record["w"], int(record["a"])
        balance_delta[workspace] += 0  # every workspace touched gets its account row
        if kind in ("open", "adjust"):
            entries.append(_entry(record, kind, amount))
            balance_delta[workspace] += amount
        elif kind == "hold":
            if record["h"] not in closed:
                entries.append(_entry(record, "hold", -amount))
            balance_delta[workspace] -= amount
            held_delta[workspace] += amount
        elif kind in ("release", "settle"):
            if record["h"] not in opened:
                entries.append(_entry(record, "orphan_release" if record.get("o") else "release", amount))
            balance_delta[workspace] += amount
            held_delta[workspace] -= amount
            if kind == "settle":
                charge = int(record["c"])
                entries.append(_entry(record, "charge", -charge))
                balance_delta[workspace] -= charge
        else:
            raise ValueError(f"credit journal record {record['s']} has unknown kind {kind!r}")

    now = time.time()
    touched = list(balance_delta)
    if accounts is None:
        before = _read_accounts(session, touched)
    else:
        before = {w: accounts[w] for w in touched if w in accounts}
    missing = [workspace for workspace in touched if workspace not in before]
    if missing:
        session.execute(
            insert(CreditAccount),
            [{"workspace_id": w, "balance_microcents": 0, "held_microcents": 0, "updated_at": now} for w in missing],
        )
    session.connection().execute(
        _MOVE_ACCOUNT,
        [{"w": w, "d_balance": balance_delta[w], "d_held": held_delta.get(w, 0), "now": now} for w in touched],
    )
    after = {}
    for workspace in touched:
        balance, held = before.get(workspace, (0, 0))
        after[workspace] = (balance + balance_delta[workspace], held + held_delta.get(workspace, 0))
    # Webhooks: credits.low / credits.depleted, in this transaction, once per crossing (funds = balance + held).
    credit_events(
        session,
        {w: sum(before.get(w, (0, 0))) for w in touched},
        {w: balance + held for w, (balance, held) in after.items()},
    )
    insert_rows(session, _LEDGER_ENTRIES, _ENTRY_COLUMNS, entries)
    new_holds = [
        {"hold_id": h, "workspace_id": r["w"], "amount_microcents": r["a"], "request_id": r["r"]}
        for h, r in opened.items()
        if h not in closed
    ]
    if new_holds:
        session.execute(insert(OpenHold), new_holds)
    old_holds = [h for h in closed if h not in opened]
    if old_holds:
        session.execute(delete(OpenHold).where(OpenHold.hold_id.in_(old_holds)))
    new_checkpoint = int(fresh[-1]["s"])
    if done == 0 and session.get(JournalCheckpoint, _CHECKPOINT_ID) is None:
        session.add(JournalCheckpoint(id=_CHECKPOINT_ID, seq=new_checkpoint))
    else:
        session.execute(
            update(JournalCheckpoint).where(JournalCheckpoint.id == _CHECKPOINT_ID).values(seq=new_checkpoint)
        )
    return AppliedBatch(new_checkpoint, after)


def ledger_sums(session: Session) -> dict[str, int]:
    """Per workspace, the sum of every ledger row (equals the account balance: the invariant)."""
    rows = session.execute(
        select(LedgerEntry.workspace_id, func.sum(LedgerEntry.amount_microcents)).group_by(LedgerEntry.workspace_id)
    )
    return {workspace: int(total) for workspace, total in rows}
