"""Shared checks for the money tests: a migrated SQLite file and the ledger invariant, read from SQL."""

from __future__ import annotations

from pathlib import Path

from runinfra_gateway.billing.models import CreditAccount, LedgerEntry, OpenHold
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from sqlalchemy import func, select


def migrated_database(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    return db


def ledger_state(db: Database) -> dict[str, tuple[int, int, int, int]]:
    """Per workspace: (ledger row sum, account balance, account held, sum of open holds), read from SQL."""
    with db.session() as session:
        sums = {
            workspace: total
            for workspace, total in session.execute(
                select(LedgerEntry.workspace_id, func.sum(LedgerEntry.amount_microcents)).group_by(
                    LedgerEntry.workspace_id
                )
            )
        }
        held = {
            workspace: total
            for workspace, total in session.execute(
                select(OpenHold.workspace_id, func.sum(OpenHold.amount_microcents)).group_by(OpenHold.workspace_id)
            )
        }
        accounts = session.execute(
            select(CreditAccount.workspace_id, CreditAccount.balance_microcents, CreditAccount.held_microcents)
        ).all()
    return {w: (int(sums.get(w, 0)), int(b), int(h), int(held.get(w, 0))) for w, b, h in accounts}


def assert_ledger_consistent(db: Database) -> dict[str, int]:
    """The invariant: for every workspace the ledger rows sum to the balance; returns the balances."""
    state = ledger_state(db)
    for workspace, (row_sum, balance, held, open_holds) in state.items():
        assert row_sum == balance, f"{workspace}: ledger sums to {row_sum}, balance is {balance}"
        assert held == open_holds, f"{workspace}: held {held}, open holds sum to {open_holds}"
        assert balance >= 0, f"{workspace}: negative balance {balance}"
    return {workspace: balance for workspace, (_, balance, _, _) in state.items()}


def charges_by_request(db: Database) -> dict[str, list[int]]:
    """Every charge row's amount (positive micro-cents), grouped by request id."""
    with db.session() as session:
        rows = session.execute(
            select(LedgerEntry.request_id, LedgerEntry.amount_microcents).where(LedgerEntry.kind == "charge")
        ).all()
    found: dict[str, list[int]] = {}
    for request_id, amount in rows:
        found.setdefault(str(request_id), []).append(-int(amount))
    return found


def hold_and_release_counts(db: Database) -> tuple[dict[int, int], dict[int, int]]:
    """How many hold rows and how many release rows each hold id has."""
    with db.session() as session:
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.hold_id, func.count())
            .where(LedgerEntry.kind.in_(("hold", "release", "orphan_release")))
            .group_by(LedgerEntry.kind, LedgerEntry.hold_id)
        ).all()
    holds = {int(hold_id or 0): int(count) for kind, hold_id, count in rows if kind == "hold"}
    releases: dict[int, int] = {}
    for kind, hold_id, count in rows:
        if kind != "hold":
            releases[int(hold_id or 0)] = releases.get(int(hold_id or 0), 0) + int(count)
    return holds, releases



def orphan_releases(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(LedgerEntry.kind == "orphan_release")) or 0)
