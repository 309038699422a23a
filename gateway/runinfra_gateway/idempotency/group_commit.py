"""Group commit: units of database work queued from the event loop share one transaction.

Each caller of :meth:`GroupCommit.run` resumes only after the commit that contains
its work, so what it wrote is as durable as if it had committed alone. While one
group commits on the database thread, new work queues up and goes in the next
group: under load the number of transactions stays about constant however many
requests there are, and a lone request waits for no timer.

A unit of work must not commit, and must be safe to run again: if a group fails,
its transaction is rolled back and each unit is retried in a transaction of its own,
so one failing unit fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from runinfra_gateway.store import Database

__all__ = ["GroupCommit"]

T = TypeVar("T")

_Unit = tuple[Callable[[Session], Any], "asyncio.Future[Any]"]


class GroupCommit:
    """Queue work for the database thread; every group of queued work is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Unit] = []
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in the next group's transaction; return its result once committed.

        A caller cancelled while it waits does not take its work back: the work still runs
        (as a plain ``Database.run`` would, once handed to the thread).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((work, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="runinfra-idempotency-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group, self._queue = self._queue, []
                await self._commit(group)
        finally:
            for _, future in self._queue:  # only when the loop shuts down under us
                future.cancel()

    async def _commit(self, group: list[_Unit]) -> None:
        try:
            results = await self._db.run(lambda session: [work(session) for work, _ in group])
        except Exception as error:
            if len(group) == 1:
                if not group[0][1].done():
                    group[0][1].set_exception(error)
                return
            for unit in group:  # rolled back: find the unit that failed, the others still commit
                await self._commit_alone(unit)
            return
        except BaseException:
            for _, future in group:
                future.cancel()
            raise
        for (_, future), result in zip(group, results):
            if not future.done():
                future.set_result(result)

    async def _commit_alone(self, unit: _Unit) -> None:
        work, future = unit
        try:
            result = await self._db.run(work)
        except Exception as error:
            if not future.done():
                future.set_exception(error)
            return
        if not future.done():
            future.set_result(result)
