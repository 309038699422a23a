"""Fixtures for the webhook tests: a migrated SQLite file with a workspace, a real receiver, fast settings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.store.models import Workspace
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings

from .receiver import Receiver

#: Runs a test on SQLite and on a real PostgreSQL server.
BOTH_STORES = pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)

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


@pytest.fixture
def db(db: Database) -> Database:
    """The shared migrated database (gateway/tests/conftest.py; PostgreSQL too with BOTH_STORES) with this
    suite's two workspaces."""
    with db.session() as session:
        for workspace in (WORKSPACE, OTHER_WORKSPACE):
            session.add(Workspace(id=workspace, name=workspace, created=datetime.now(timezone.utc)))
    return db


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
