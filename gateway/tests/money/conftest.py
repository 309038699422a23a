"""Fixtures for the money tests: a migrated SQLite file per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runinfra_gateway.store import Database

from .helpers import migrated_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = migrated_database(tmp_path / "gateway.sqlite3")
    yield database
    database.close()
