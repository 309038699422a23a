"""The request log on both databases: the batch insert (multi-row INSERTs) returns every column as written,
and the migration that turned its timestamp into Unix seconds keeps each row's time, both ways."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest
from runinfra_gateway.observability.request_log import RequestLogWriter
from runinfra_gateway.store import Database
from runinfra_gateway.store.bulk import MAX_PARAMETERS
from runinfra_gateway.store.migrate import downgrade, upgrade
from runinfra_gateway.store.models import RequestLog
from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select

CREATED = 1_790_000_000.25  # 2026-09-21 14:13:20.25 UTC


def _write(db: Database, rows: list[tuple[Any, ...]]) -> None:
    """Hand ``rows`` to a RequestLogWriter and flush it: one batch, as the gateway writes them."""

    async def write() -> None:
        writer = RequestLogWriter(db)
        for row in rows:
            writer.add(row)
        await writer.flush()

    asyncio.run(write())


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_request_log_rows_round_trip(db: Database) -> None:
    rows = [
        ("req_1", "client-1", "ws_1", "key_1", "smollm2", "chat.completions", "POST", "/v1/chat/completions",
         200, None, 12.345, 80, 9, 1234, CREATED),
        ("req_2", None, None, None, None, None, "GET", "/v1/nope'); DROP TABLE request_log; --",
         404, "not_found", 0.5, 0, 0, 0, CREATED + 1),
    ]

    _write(db, rows)
    with db.session() as session:
        stored = list(session.scalars(select(RequestLog).order_by(RequestLog.request_id)))
    assert [r.request_id for r in stored] == ["req_1", "req_2"]
    first, second = stored
    assert (first.client_request_id, first.workspace_id, first.key_id, first.deployment_id, first.operation) == (
        "client-1", "ws_1", "key_1", "smollm2", "chat.completions"
    )
    assert (first.status, first.latency_ms, first.input_tokens, first.output_tokens, first.cost_microcents) == (
        200, 12.345, 80, 9, 1234
    )
    assert second.path == "/v1/nope'); DROP TABLE request_log; --"
    assert (second.error_type, second.client_request_id, second.workspace_id) == ("not_found", None, None)
    assert (first.created_at, second.created_at) == (CREATED, CREATED + 1)


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_batch_larger_than_one_statement_is_written_whole(db: Database) -> None:
    per_statement = MAX_PARAMETERS // 15
    count = 2 * per_statement + 3  # 2,135 rows: statements of 1,024, 1,024, 64, 16, 4, 2 and 1 rows
    rows = [
        (f"req_{i:06d}", None, "ws_1", "key_1", "smollm2", "chat.completions", "POST", "/v1/chat/completions",
         200, None, 1.0, i, 1, i, CREATED + i)
        for i in range(count)
    ]

    _write(db, rows)
    with db.session() as session:
        stored = session.execute(select(func.count(), func.sum(RequestLog.input_tokens))).one()
        last = session.scalars(select(RequestLog).where(RequestLog.request_id == f"req_{count - 1:06d}")).one()
        in_order = list(session.scalars(select(RequestLog.request_id).order_by(RequestLog.id)))
    assert tuple(stored) == (count, sum(range(count)))
    assert (last.cost_microcents, last.output_tokens) == (count - 1, 1)
    assert in_order == [row[0] for row in rows]


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_the_epoch_migration_keeps_each_rows_time_both_ways(db: Database) -> None:
    created = CREATED + 0.123456
    _write(db, [("req_old", None, "ws_1", None, None, None, "GET", "/v1/models", 200, None, 1.0, 0, 0, 0, created)])

    downgrade(db, "0001_core")  # back to the timestamp column
    old_table = Table("request_log", MetaData(), Column("request_id", String), Column("created", DateTime(True)))
    with db.engine.connect() as connection:
        (as_timestamp,) = connection.execute(select(old_table.c.created)).one()
    if as_timestamp.tzinfo is None:  # SQLite keeps the UTC text without an offset
        as_timestamp = as_timestamp.replace(tzinfo=timezone.utc)
    assert as_timestamp == datetime.fromtimestamp(created, timezone.utc)

    upgrade(db)
    with db.session() as session:
        row = session.scalars(select(RequestLog)).one()
    assert row.request_id == "req_old"
    assert abs(row.created_at - created) < 1e-6
