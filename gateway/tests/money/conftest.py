"""Fixtures for the money tests: a migrated database per test (SQLite file, or PostgreSQL when asked).

``db`` is a fresh SQLite file; a test parametrized with
``@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)`` also runs on
a fresh database of the real PostgreSQL server of ``postgres_url`` (gateway/tests/conftest.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from runinfra_gateway.testing import create_database

from .helpers import migrated_database

_database_names = itertools.count(1)


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        database = migrated_database(tmp_path / "gateway.sqlite3")
    else:
        assert kind == "postgresql"
        server: str = request.getfixturevalue("postgres_url")
        database = Database(create_database(server, f"money_{next(_database_names)}"))
        upgrade(database)
    yield database
    database.close()
