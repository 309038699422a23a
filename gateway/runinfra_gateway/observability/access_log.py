"""Structured request logs: one JSON line per request, written without a logging handler chain.

Lines are encoded with orjson (so a hostile path or client id cannot break a
line or forge another) into a buffer that is flushed every 200 ms and at
shutdown. Secrets never reach here: the line carries key *ids*, not keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import IO, Any

import orjson

__all__ = ["AccessLog"]


class AccessLog:
    def __init__(self, stream: IO[bytes] | None = None, *, enabled: bool = True) -> None:
        self._stream = stream if stream is not None else sys.stderr.buffer
        self._buffer: list[bytes] = []
        self.enabled = enabled
        self._flusher: asyncio.Task[None] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._buffer.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))

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
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.flush()

