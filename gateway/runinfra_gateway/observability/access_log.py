"""Structured request logs: one JSON line per request, written without a logging handler chain.

Lines are encoded with orjson (so a hostile path or client id cannot break a
line or forge another) into a buffer that is flushed at most 200 ms after its
first line and at shutdown; an idle gateway schedules nothing. Secrets never
reach here: the line carries key *ids*, not keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import IO, Any

import orjson

__all__ = ["AccessLog"]

_FLUSH_DELAY_SECONDS = 0.2  # a line reaches the stream at most this long after it was written


class AccessLog:
    def __init__(self, stream: IO[bytes] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._buffer: list[bytes] = []
        self.enabled = enabled
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._buffer.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            if self._scheduled is None and self._loop is not None:
                self._scheduled = self._loop.call_later(_FLUSH_DELAY_SECONDS, self._timed_flush)

    def event(self, event: str, **fields: Any) -> None:
        """A non-request line (start, deployment verified, shutdown)."""
        self.write({"ts": round(time.time(), 3), "event": event, **fields})
        self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data, self._buffer = b"".join(self._buffer), []
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(data)
            self._stream.flush()

    def start(self) -> None:
        """From now on, buffered lines are flushed by a timer on the running loop (armed only by a write)."""
        self._loop = asyncio.get_running_loop()

    def _timed_flush(self) -> None:
        self._scheduled = None
        self.flush()

    async def close(self) -> None:
        scheduled, self._scheduled = self._scheduled, None
        if scheduled is not None:
            scheduled.cancel()
        self._loop = None
        self.flush()

