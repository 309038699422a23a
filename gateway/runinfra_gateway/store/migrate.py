"""Bring a database to the newest schema: ``alembic upgrade heads`` over every owner's revisions."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from runinfra_gateway.store.database import Database

__all__ = ["MIGRATIONS_DIR", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def upgrade(db: Database) -> None:
    """Apply every pending revision on every branch (core, billing, webhooks, ...). Sync: call at start."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
