"""Fixtures for the webhook tests: a migrated SQLite file with a workspace, a real receiver, fast settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from runinfra_gateway.store.models import Workspace
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings

from .receiver import Receiver

WORKSPACE = "ws_hooks"
OTHER_WORKSPACE = "ws_other"

# Short enough that a test sees every retry within a second or two.
FAST = WebhookSettings(
    retry_schedule=(0, 0.1, 0.2),
    jitter_fraction=0.0,
    timeout_seconds=1.0,
    lease_seconds=3.0,
    poll_interval_seconds=0.05,
    max_concurrency=4,
    allowed_hosts=frozenset({"127.0.0.1"}),
)


def migrated(path: Path) -> Database:
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    with db.session() as session:
        for workspace in (WORKSPACE, OTHER_WORKSPACE):
            session.add(Workspace(id=workspace, name=workspace, created=datetime.now(timezone.utc)))
    return db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = migrated(tmp_path / "gateway.sqlite3")
    yield database
    database.close()


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    return SecretBox.from_data_dir(tmp_path / "data")


@pytest.fixture
def service(db: Database, box: SecretBox) -> WebhookService:
    return WebhookService(db, FAST, box)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()
