"""The access log and the request-log writer: prompt when there is something to write, asleep when idle.

The event loop here is a real one whose selector counts how often the loop
wakes up (the stdlib selector, subclassed): a timer that fires with nothing to
do shows up as a wake-up.
"""

from __future__ import annotations

import asyncio
import io
import json
import selectors
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runinfra_gateway.observability import AccessLog, RequestLogWriter
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from runinfra_gateway.store.models import RequestLog
from sqlalchemy import func, select


class CountingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        self.wakeups += 1
        result: list[tuple[Any, int]] = super().select(timeout)
        return result


def _row(request_id: str) -> tuple[Any, ...]:
    return (request_id, None, "ws_1", "key_1", "dep", "chat.completions", "POST", "/v1/chat/completions",
            200, None, 1.0, 3, 4, 5, time.time())


def _count_rows(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(RequestLog)) or 0)


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was written in time")


def test_idle_log_writers_do_not_wake_the_loop_and_busy_ones_write_promptly(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'logs.sqlite3'}")
    upgrade(db)
    stream = io.BytesIO()
    selector = CountingSelector()
    loop = asyncio.SelectorEventLoop(selector)

    async def scenario() -> tuple[int, float, float]:
        access_log = AccessLog(stream)
        request_log = RequestLogWriter(db, interval_seconds=0.2)
        access_log.start()
        request_log.start()
        await asyncio.sleep(0.05)  # both started and settled
        before = selector.wakeups
        await asyncio.sleep(1.0)  # idle: a sleeping loop wakes once, for this sleep
        idle_wakeups = selector.wakeups - before

        written = time.monotonic()
        access_log.write({"event": "request", "n": 1})
        request_log.add(_row("req_1"))
        await _until(lambda: bool(stream.getvalue()))
        line_after = time.monotonic() - written
        await _until(lambda: _count_rows(db) > 0)
        row_after = time.monotonic() - written
        await request_log.close()
        await access_log.close()
        return idle_wakeups, line_after, row_after

    try:
        idle_wakeups, line_after, row_after = loop.run_until_complete(scenario())
    finally:
        loop.close()
        db.close()
    assert idle_wakeups <= 2
    assert line_after < 0.5  # flushed about 200 ms after the line was written
    assert row_after < 1.0  # written about one interval after the row arrived
    assert json.loads(stream.getvalue()) == {"event": "request", "n": 1}
