"""The gateway's database handle: one SQLAlchemy engine, sessions, and a worker thread.

SQLAlchemy runs synchronously (stdlib ``sqlite3`` for the default file,
``psycopg`` 3 for PostgreSQL); :meth:`Database.run` moves each unit of work onto
one dedicated thread so nothing blocks the event loop and SQLite sees a single
writer. The same code serves both dialects: only the URL differs.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database"]

T = TypeVar("T")


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers proceed while the writer commits; NORMAL sync is durable
    # against a process crash (kill -9), which is the failure the ledger must survive.
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


class Database:
    """An engine, a session factory and the thread that runs database work."""

    def __init__(self, url: str) -> None:
        self.url = url
        # A server connection can go stale between uses and is checked first; a SQLite file cannot.
        pings = make_url(url).get_backend_name() != "sqlite"
        # hide_parameters: a failed statement's values (hashes, sealed secrets) stay out of errors and logs.
        self.engine: Engine = create_engine(url, pool_pre_ping=pings, hide_parameters=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="runinfra-db")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self._sessions.begin() as session:
            yield session

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one transaction on the database thread."""

        def in_transaction() -> T:
            with self.session() as session:
                return work(session)

        return await asyncio.get_running_loop().run_in_executor(self._worker, in_transaction)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self.engine.dispose()
