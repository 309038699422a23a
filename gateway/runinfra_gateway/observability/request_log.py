"""The ``request_log`` table, written in batches by a background task, never on the request path.

The request path hands over a plain tuple (no dict, no datetime), written as it
is at most ``interval_seconds`` after the first row of the batch arrived. With no
rows the task sleeps until one arrives: an idle gateway does not wake up to write
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from runinfra_gateway.store.bulk import insert_rows
from runinfra_gateway.store.database import Database
from runinfra_gateway.store.models import RequestLog

__all__ = ["RequestLogWriter"]

logger = logging.getLogger("runinfra_gateway")
_MAX_PENDING = 50_000
_COLUMNS = (
    "request_id", "client_request_id", "workspace_id", "key_id", "deployment_id", "operation", "method", "path",
    "status", "error_type", "latency_ms", "input_tokens", "output_tokens", "cost_microcents", "created_at",
)
_TABLE = cast(Table, RequestLog.__table__)
#: One finished request, in :data:`_COLUMNS` order (``created_at`` as Unix seconds).
Row = tuple[Any, ...]


class RequestLogWriter:
    def __init__(self, db: Database, *, interval_seconds: float = 1.0) -> None:
        self._db = db
        self._interval = interval_seconds
        self._pending: list[Row] = []
        self._has_rows = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, row: Row) -> None:
        if len(self._pending) < _MAX_PENDING:  # a stuck database must not eat the memory
            self._pending.append(row)
            self._has_rows.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await self._has_rows.wait()
            await asyncio.sleep(self._interval)  # gather the batch
            self._has_rows.clear()  # before the flush takes the rows: one added during the write sets it again
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []

        def write(session: Session) -> None:
            insert_rows(session, _TABLE, _COLUMNS, rows)

        try:
            await self._db.run(write)
        except Exception:
            logger.exception("request log: could not write %d rows", len(rows))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
