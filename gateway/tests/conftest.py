"""Fixtures shared by every gateway test suite."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from runinfra_gateway.testing import LlamaServer, create_database, postgres_server

_database_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real, throwaway PostgreSQL server for the whole session (one for the money, webhooks and core suites)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def llama() -> Iterator[LlamaServer]:
    """One real llama.cpp server (SmolLM2-135M) for the whole session: the upstream engine of every suite."""
    server = LlamaServer().start(timeout=120)
    yield server
    server.stop()


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database: a SQLite file, or, for a test parametrized with
    ``@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)``, also a fresh database
    on the session's real PostgreSQL server."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'gateway.sqlite3'}")
    else:
        assert kind == "postgresql"
        server: str = request.getfixturevalue("postgres_url")
        database = Database(create_database(server, f"test_{next(_database_names)}"))
    upgrade(database)
    yield database
    database.close()
