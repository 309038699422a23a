"""Worker threads that own model instances, fed from one bounded queue.

Model compute never runs on the event loop: each worker thread loads its own
model instance (llama.cpp contexts, ONNX sessions and CTranslate2 models are
not shared between threads) and takes jobs from a queue with a fixed size.
When the queue is full the caller gets a 503 ``deployment_error`` with
``Retry-After`` at once instead of waiting without bound. The asyncio side
awaits futures; streaming jobs push items to the loop as they are made.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .. import errors

__all__ = ["StreamIterator", "WorkerPool"]

log = logging.getLogger(__name__)

M = TypeVar("M")
T = TypeVar("T")
X = TypeVar("X")

_END = object()


@dataclass
class _Job:
    run: Callable[[Any], None]
    fail: Callable[[BaseException], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    # True once nobody waits for the result (checked by the worker before it starts the job).
    abandoned: Callable[[], bool] = lambda: False


def _deliver(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Hand a result to the loop; a loop that has gone away has no one waiting."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class StreamIterator(Generic[X]):
    """Items a worker emits, in order; closing it early tells the worker to stop."""

    def __init__(self, items: asyncio.Queue[tuple[object, Any]], cancelled: threading.Event) -> None:
        self._items = items
        self._cancelled = cancelled
        self._finished = False

    def __aiter__(self) -> StreamIterator[X]:
        return self

    async def __anext__(self) -> X:
        if self._finished:
            raise StopAsyncIteration
        try:
            kind, value = await self._items.get()
        except BaseException:
            # The consumer was cancelled while waiting: the worker stops too.
            self._cancelled.set()
            self._finished = True
            raise
        if kind is _END:
            self._finished = True
            if value is not None:
                raise value
            raise StopAsyncIteration
        item: X = value
        return item

    async def aclose(self) -> None:
        self._cancelled.set()
        self._finished = True

    def close(self) -> None:
        self._cancelled.set()
        self._finished = True

    def __del__(self) -> None:
        # Dropped without being read to the end or closed: nobody is listening, so stop generating.
        self._cancelled.set()


class WorkerPool(Generic[M]):
    """``workers`` threads, one model each, one bounded queue.

    Each thread makes its model with ``load`` and, when it stops, hands it to ``unload`` (if given).
    """

    def __init__(
        self,
        name: str,
        load: Callable[[], M],
        *,
        workers: int = 1,
        queue_size: int = 8,
        unload: Callable[[M], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.name = name
        self._load = load
        self._unload = unload
        self._workers = workers
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._loaded: list[concurrent.futures.Future[None]] = []
        self._threads: list[threading.Thread] = []
        self._load_error: BaseException | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the workers; each loads its model in the background."""
        if self._threads:
            return
        for index in range(self._workers):
            loaded: concurrent.futures.Future[None] = concurrent.futures.Future()
            thread = threading.Thread(
                target=self._work, args=(loaded,), name=f"engine-{self.name}-{index}", daemon=True
            )
            self._loaded.append(loaded)
            self._threads.append(thread)
            thread.start()

    async def ready(self) -> None:
        """Wait until every worker has its model; raise the load error if one failed."""
        self.start()
        for loaded in self._loaded:
            await asyncio.wrap_future(loaded)

    def close(self) -> None:
        """Stop the workers after the jobs already queued (blocking; call from a thread)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # -- submitting work -----------------------------------------------------------

    async def run(self, fn: Callable[[M], T]) -> T:
        """Run ``fn(model)`` on a worker and return its result."""
        return await self.run_cancellable(lambda model, _cancelled: fn(model))

    async def run_cancellable(self, fn: Callable[[M, threading.Event], T]) -> T:
        """Run ``fn(model, cancelled)`` on a worker and return its result.

        ``cancelled`` is set when the caller stops waiting (its client went away): long work that
        checks it, a generation token by token, stops there and frees the worker for the next job.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        cancelled = threading.Event()

        def run(model: M) -> None:
            try:
                value = fn(model, cancelled)
            except BaseException as exc:
                _deliver(loop, _set_exception, future, exc)
            else:
                _deliver(loop, _set_result, future, value)

        self._submit(_Job(run, lambda exc: _deliver(loop, _set_exception, future, exc), cancelled,
                          abandoned=future.cancelled))
        try:
            return await future
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def stream(self, fn: Callable[[M, Callable[[X], None], threading.Event], None]) -> StreamIterator[X]:
        """Start ``fn(model, emit, cancelled)`` on a worker; what it emits arrives in order.

        Raises the back-pressure 503 here, before anything is streamed; errors
        raised by ``fn`` arrive when the iterator reaches them.
        """
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[object, Any]] = asyncio.Queue()
        job = _Job(lambda model: None, lambda exc: _deliver(loop, items.put_nowait, (_END, exc)))

        def emit(item: X) -> None:
            _deliver(loop, items.put_nowait, (None, item))

        def run(model: M) -> None:
            try:
                fn(model, emit, job.cancelled)
            except BaseException as exc:
                _deliver(loop, items.put_nowait, (_END, exc))
            else:
                _deliver(loop, items.put_nowait, (_END, None))

        job.run = run
        self._submit(job)
        return StreamIterator(items, job.cancelled)

    def _submit(self, job: _Job) -> None:
        if self._load_error is not None:
            raise errors.deployment_error(
                f"Engine {self.name!r} failed to load: {self._load_error}", status=503, retry_after_seconds=30
            )
        if self._closed:
            raise errors.deployment_error(f"Engine {self.name!r} is shutting down.", status=503, retry_after_seconds=5)
        self.start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise errors.deployment_error(
                f"Engine {self.name!r} is busy: its queue is full. Retry shortly.",
                status=503,
                retry_after_seconds=1,
                code="engine_busy",
            ) from None

    # -- the worker thread ---------------------------------------------------------

    def _work(self, loaded: concurrent.futures.Future[None]) -> None:
        try:
            model = self._load()
        except BaseException as exc:
            log.exception("engine %s failed to load", self.name)
            self._load_error = exc
            loaded.set_exception(exc)
            self._fail_queued(exc)
            return
        loaded.set_result(None)
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                if job.cancelled.is_set() or job.abandoned():
                    continue
                job.run(model)
        finally:
            if self._unload is not None:
                try:
                    self._unload(model)
                except Exception:
                    log.exception("engine %s failed to release its model", self.name)

    def _fail_queued(self, exc: BaseException) -> None:
        """When every worker failed to load, the queued jobs fail instead of waiting forever."""
        if not all(f.done() and f.exception() is not None for f in self._loaded):
            return
        failure = errors.deployment_error(
            f"Engine {self.name!r} failed to load: {exc}", status=503, retry_after_seconds=30
        )
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.fail(failure)
