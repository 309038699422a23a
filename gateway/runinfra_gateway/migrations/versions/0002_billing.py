"""Credit ledger tables: credit_accounts, credit_ledger, credit_open_holds, credit_journal_checkpoint.

Revision ID: 0002_billing
Revises: 0001_core
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_billing"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("billing",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_accounts",
        sa.Column("workspace_id", sa.String(64), primary_key=True),
        sa.Column("balance_microcents", sa.BigInteger, nullable=False),
        sa.Column("held_microcents", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "credit_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_microcents", sa.BigInteger, nullable=False),
        sa.Column("hold_id", sa.BigInteger, nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("deployment_id", sa.String(128), nullable=True),
        sa.Column("operation", sa.String(32), nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("actual_microcents", sa.BigInteger, nullable=True),
        sa.Column("usage", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_credit_ledger_workspace_id", "credit_ledger", ["workspace_id"])
    op.create_index("ix_credit_ledger_request_id", "credit_ledger", ["request_id"])
    op.create_table(
        "credit_open_holds",
        sa.Column("hold_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("amount_microcents", sa.BigInteger, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
    )
    op.create_table(
        "credit_journal_checkpoint",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("credit_journal_checkpoint")
    op.drop_table("credit_open_holds")
    op.drop_index("ix_credit_ledger_request_id", "credit_ledger")
    op.drop_index("ix_credit_ledger_workspace_id", "credit_ledger")
    op.drop_table("credit_ledger")
    op.drop_table("credit_accounts")
