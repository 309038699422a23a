"""request_log.created (a timestamp) becomes created_at (Unix seconds, a float), like the ledger's.

The batch writer then inserts the request path's float as it is; a timestamp cost
a datetime and a bind conversion per row on the database thread. Existing rows
keep their time to the microsecond.

Revision ID: 0004_request_log_epoch
Revises: 0001_core
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_request_log_epoch"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.add_column("request_log", sa.Column("created_at", sa.Float, nullable=True))
    if _sqlite():
        # SQLAlchemy stores SQLite timestamps as UTC text, "YYYY-MM-DD HH:MM:SS.ffffff"; SQLite's own date
        # functions keep milliseconds only, so the fraction is read as a number on its own.
        op.execute(
            "UPDATE request_log SET created_at ="
            " CAST(STRFTIME('%s', SUBSTR(created, 1, 19)) AS REAL) + CAST(SUBSTR(created, 20) AS REAL)"
        )
    else:
        op.execute("UPDATE request_log SET created_at = EXTRACT(EPOCH FROM created)")
    op.drop_index("ix_request_log_workspace_created", "request_log")
    with op.batch_alter_table("request_log") as batch:  # SQLite rebuilds the table; PostgreSQL alters it
        batch.drop_column("created")
        batch.alter_column("created_at", existing_type=sa.Float, nullable=False)
    op.create_index("ix_request_log_workspace_created_at", "request_log", ["workspace_id", "created_at"])


def downgrade() -> None:
    op.add_column("request_log", sa.Column("created", sa.DateTime(timezone=True), nullable=True))
    if _sqlite():
        op.execute(
            "UPDATE request_log SET created = STRFTIME('%Y-%m-%d %H:%M:%S', created_at, 'unixepoch')"
            " || PRINTF('.%06d',"
            " MIN(999999, CAST(ROUND((created_at - CAST(created_at AS INTEGER)) * 1e6) AS INTEGER)))"
        )
    else:
        op.execute("UPDATE request_log SET created = TO_TIMESTAMP(created_at)")
    op.drop_index("ix_request_log_workspace_created_at", "request_log")
    with op.batch_alter_table("request_log") as batch:
        batch.drop_column("created_at")
        batch.alter_column("created", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_request_log_workspace_created", "request_log", ["workspace_id", "created"])
