"""Database work the webhook runtime repeats on a timer (the daily digest, retention)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session

from runinfra_gateway.store import Database

__all__ = ["Periodic"]

logger = logging.getLogger("runinfra_gateway.webhooks")


class Periodic:
    """Runs ``work(session)`` in one transaction every ``interval_seconds`` (first at start) until closed.

    A failed run is logged and tried again at the next tick: with several replicas
    sharing a database, one of them may have done the same work a moment earlier.
    """

    def __init__(self, db: Database, name: str, interval_seconds: float, work: Callable[[Session], object]) -> None:
        self._db = db
        self._name = name
        self._interval = interval_seconds
        self._work = work
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"runinfra-webhooks-{self._name}")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self._db.run(self._work)
            except Exception:
                logger.warning("webhook.%s_failed", self._name, exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)
