"""The dashboard's SQL aggregates give the same buckets on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from runinfra_gateway.dashboard.data import usage_per_day
from runinfra_gateway.observability import RequestLogWriter
from runinfra_gateway.store import Database


def _row(request_id: str, created: datetime, status: int = 200) -> tuple[Any, ...]:
    return (request_id, None, "ws_1", "key_1", "smollm2", "chat.completions", "POST", "/v1/chat/completions",
            status, None, 1.0, 10, 2, 1_000_000, created.timestamp())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_requests_at_the_edge_of_a_day_count_for_their_own_day(db: Database) -> None:
    # PostgreSQL's EXTRACT(EPOCH) keeps the fraction and a bare CAST rounds it: 23:59:59.7 once counted for
    # the next day there, and for its own day on SQLite.
    midnight = datetime.combine(datetime.now(timezone.utc).date(), datetime.min.time(), tzinfo=timezone.utc)
    rows = [
        _row("req_late", midnight - timedelta(milliseconds=300)),
        _row("req_early", midnight + timedelta(milliseconds=200)),
        _row("req_failed", midnight + timedelta(seconds=1), status=500),
    ]

    async def read() -> list[Any]:
        writer = RequestLogWriter(db)
        for row in rows:
            writer.add(row)
        state: Any = SimpleNamespace(db=db, request_log=writer)
        return await usage_per_day(state, "ws_1", 2)

    yesterday, today = asyncio.run(read())
    assert (yesterday.day, yesterday.requests, yesterday.errors, yesterday.spend_cents) == (
        (midnight - timedelta(days=1)).date().isoformat(), 1, 0, 1.0
    )
    assert (today.day, today.requests, today.errors, today.spend_cents) == (midnight.date().isoformat(), 2, 1, 2.0)
