"""Bulk inserts for the batch writers: one DB-API ``executemany`` per batch.

SQLAlchemy's ORM and Core inserts process every parameter of every row in
Python; for the ledger and request-log batches that costs more than the insert
itself, on a thread that shares the GIL with the event loop. Here the statement
is built once per batch and only the columns whose type needs it for this
dialect (SQLite's DATETIME strings, say) go through SQLAlchemy's bind processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

__all__ = ["insert_rows"]


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    # Built from constants only (table and column names, the driver's placeholder); values go as parameters.
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    processors = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        processor = column_type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((index, processor))
    if processors:
        rows = [_processed(row, processors) for row in rows]
    connection.exec_driver_sql(statement, list(rows))


def _processed(row: tuple[Any, ...], processors: list[tuple[int, Any]]) -> tuple[Any, ...]:
    values = list(row)
    for index, processor in processors:
        if values[index] is not None:
            values[index] = processor(values[index])
    return tuple(values)
