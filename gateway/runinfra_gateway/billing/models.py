"""The credit ledger's tables.

``credit_ledger`` is append-only: every charge, top-up and debit is a row with a
signed amount, and so is every hold still open when a batch is written (with its
release row once it closes); a hold opened and closed within one batch nets to zero
and leaves only its charge. For each workspace the rows sum to
``credit_accounts.balance_microcents`` (what it can spend; open holds already taken
out). ``credit_open_holds`` lists holds not yet settled or released, so a restart can
release the ones a crash orphaned. ``credit_journal_checkpoint`` is the last journal
sequence number written here, so replaying the journal after a crash is exact.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runinfra_gateway.store.base import Base

__all__ = ["CreditAccount", "JournalCheckpoint", "LedgerEntry", "OpenHold"]


class CreditAccount(Base):
    """A workspace's spendable balance and what its open holds reserve, in micro-cents."""

    __tablename__ = "credit_accounts"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance_microcents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    held_microcents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[float] = mapped_column(Float, nullable=False)


class LedgerEntry(Base):
    """One append-only movement of credits.

    ``kind``: open, adjust, hold, release, charge, or orphan_release (a hold that a crash
    left open, released in full when the gateway restarted).
    """

    __tablename__ = "credit_ledger"
    __table_args__ = (
        Index("ix_credit_ledger_workspace_id", "workspace_id"),
        Index("ix_credit_ledger_request_id", "request_id"),
    )

    # 64-bit on PostgreSQL: two entries per charged request outrun a 32-bit serial in days at full load.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount_microcents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    hold_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    deployment_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    operation: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The uncapped price of the usage (a charge is capped so the balance never goes negative).
    actual_microcents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    usage: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class OpenHold(Base):
    """A hold not yet settled or released."""

    __tablename__ = "credit_open_holds"

    hold_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    workspace_id: Mapped[str] = mapped_column(String(64), nullable=False)
    amount_microcents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False)


class JournalCheckpoint(Base):
    """The highest journal sequence number already applied to these tables (one row, id 1)."""

    __tablename__ = "credit_journal_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
