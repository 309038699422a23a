"""Move a database between schema revisions: ``alembic upgrade heads`` over every owner's revisions, and back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from runinfra_gateway.store.database import Database

__all__ = ["MIGRATIONS_DIR", "downgrade", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(db: Database) -> None:
    """Apply every pending revision on every branch (core, billing, webhooks, ...). Sync: call at start."""
    _run(db, command.upgrade, "heads")


def downgrade(db: Database, revision: str) -> None:
    """Undo revisions until ``revision`` is the newest applied (with every revision that depends on it)."""
    _run(db, command.downgrade, revision)


def _run(db: Database, step: Callable[[Config, str], None], revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config, revision)
