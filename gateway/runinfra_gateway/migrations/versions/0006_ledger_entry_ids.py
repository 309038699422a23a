"""credit_ledger.id becomes a 64-bit integer on PostgreSQL, and so does its sequence.

Every charged request appends two entries (hold and settlement): a 32-bit serial runs out
after about a billion requests, under four days at 3,000 requests/s. SQLite's INTEGER
PRIMARY KEY is already 64 bits, so only PostgreSQL changes.

Revision ID: 0006_ledger_entry_ids
Revises: 0002_billing
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_ledger_entry_ids"
down_revision: str | Sequence[str] | None = "0002_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("credit_ledger", "id", type_=sa.BigInteger, existing_type=sa.Integer, existing_nullable=False)
        op.execute("ALTER SEQUENCE credit_ledger_id_seq AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("ALTER SEQUENCE credit_ledger_id_seq AS INTEGER")
        op.alter_column("credit_ledger", "id", type_=sa.Integer, existing_type=sa.BigInteger, existing_nullable=False)
