"""Micro-batching: requests that arrive while an engine is busy run together in its next turn.

A model that takes batches (a sentence encoder) does much more work per call
on a batch than on one input, so instead of one worker job per request, a few
"lanes" (one per worker) each take every request waiting at that moment, up
to ``max_items`` inputs, run them as one batch and hand each request its own
results. A request never waits for a batch to fill: an idle lane starts at
once. Waiting requests are bounded (``max_waiting``); beyond that the caller
gets the same 503 with ``Retry-After`` as a full worker queue.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from .. import errors
from ._workers import WorkerPool

__all__ = ["MicroBatcher"]

M = TypeVar("M")
I = TypeVar("I")  # noqa: E741 - an input item
R = TypeVar("R")


class MicroBatcher(Generic[M, I, R]):
    """Runs ``run_batch(model, items)`` on ``pool`` for the inputs of every request waiting at a lane's turn."""

    def __init__(
        self,
        pool: WorkerPool[M],
        run_batch: Callable[[M, list[I]], Sequence[R]],
        *,
        lanes: int,
        max_items: int,
        max_waiting: int,
    ) -> None:
        self._pool = pool
        self._run_batch = run_batch
        self._lanes = lanes
        self._max_items = max_items
        self._max_waiting = max_waiting
        self._waiting: deque[tuple[list[I], asyncio.Future[list[R]]]] = deque()
        self._active = 0
        self._lane_tasks: set[asyncio.Future[None]] = set()
        #: Batches run and requests served (a request per batch means no batching happened).
        self.batches = 0
        self.requests = 0

    async def submit(self, items: list[I]) -> list[R]:
        """The results for ``items`` (one request's inputs), in order."""
        if len(self._waiting) >= self._max_waiting:
            raise errors.deployment_error(
                f"Engine {self._pool.name!r} is busy: {len(self._waiting)} requests are waiting. Retry shortly.",
                status=503,
                retry_after_seconds=1,
                code="engine_busy",
            )
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if self._active < self._lanes:
            self._active += 1
            lane = asyncio.ensure_future(self._lane())
            self._lane_tasks.add(lane)
            lane.add_done_callback(self._lane_tasks.discard)
        return await future

    def _take(self) -> list[tuple[list[I], asyncio.Future[list[R]]]]:
        taken: list[tuple[list[I], asyncio.Future[list[R]]]] = []
        count = 0
        while self._waiting:
            items, future = self._waiting[0]
            if future.done():  # its caller went away
                self._waiting.popleft()
                continue
            if taken and count + len(items) > self._max_items:
                break
            self._waiting.popleft()
            taken.append((items, future))
            count += len(items)
        return taken

    async def _lane(self) -> None:
        try:
            while True:
                taken = self._take()
                if not taken:
                    return
                flat: list[I] = [item for items, _ in taken for item in items]
                try:
                    results = await self._pool.run(functools.partial(self._call, flat))
                except BaseException as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                self.batches += 1
                self.requests += len(taken)
                start = 0
                for items, future in taken:
                    mine = results[start : start + len(items)]
                    start += len(items)
                    if not future.done():
                        future.set_result(mine)
        finally:
            self._active -= 1

    def _call(self, items: list[I], model: M) -> list[R]:
        return list(self._run_batch(model, items))

    @property
    def waiting(self) -> int:
        return len(self._waiting)


