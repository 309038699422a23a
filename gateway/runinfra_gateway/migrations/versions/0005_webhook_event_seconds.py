"""webhook_events.created_at (Unix seconds) becomes a 64-bit integer on PostgreSQL.

A 32-bit INTEGER of seconds ends on 2038-01-19: every event after it would fail to
insert. SQLite's INTEGER is already 64 bits, so only PostgreSQL changes.

Revision ID: 0005_webhook_event_seconds
Revises: 0002_webhooks
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_webhook_event_seconds"
down_revision: str | Sequence[str] | None = "0002_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("webhook_events", "created_at", type_=sa.BigInteger, existing_type=sa.Integer,
                        existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("webhook_events", "created_at", type_=sa.Integer, existing_type=sa.BigInteger,
                        existing_nullable=False)
