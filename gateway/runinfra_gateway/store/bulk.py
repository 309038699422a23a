"""Bulk inserts for the batch writers: multi-row ``INSERT … VALUES (…), (…)`` statements.

Why not ``executemany``: the stdlib ``sqlite3`` driver releases the GIL around
every row's step, and each time the event loop thread is waiting for it, the
writer then waits up to a switch interval to get it back. A batch of thousands
of rows becomes thousands of GIL handoffs (measured: 17,500 rows next to a
busy Python thread took 4.4-45 s by ``executemany``, 0.27 s as multi-row
statements). One statement per chunk of rows releases it once per chunk.

Why chunks of a power of two rows: a statement is compiled once per distinct
text, and compiling a multi-row ``VALUES`` costs SQLite about as much as running
it (measured: 6.4-9.1 us per row when every batch had its own row count, 3.0-3.9
with the same rows split into power-of-two chunks). Both drivers keep prepared
statements by text (``sqlite3`` the last 128 per connection; psycopg prepares one
on the server after a few uses), so each table needs at most 11 texts, ever.

Why not SQLAlchemy's ORM or Core inserts: they process every parameter of
every row in Python. Here only the columns whose type needs it for this
dialect (SQLite's DATETIME strings, say) go through SQLAlchemy's bind processor.
Numeric columns do not: the writers pass ints and floats, which every driver
takes as they are (the processor exists to turn ``Decimal`` into ``float``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Numeric, Table
from sqlalchemy.orm import Session

__all__ = ["insert_rows"]

#: Parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535 bind-parameter limits.
MAX_PARAMETERS = 16_000


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    marker = "?" if dialect.paramstyle == "qmark" else "%s"
    row_markers = f"({', '.join([marker] * len(columns))})"
    # Built from constants only (table and column names, the driver's placeholder); values go as parameters.
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "  # noqa: S608
    processors = []
    for index, name in enumerate(columns):
        column_type = table.c[name].type
        if isinstance(column_type, Numeric):
            continue
        processor = column_type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors.append((index, processor))
    if processors:
        rows = [_processed(row, processors) for row in rows]
    start = 0
    for size in _chunk_sizes(len(rows), MAX_PARAMETERS // len(columns)):
        chunk = rows[start : start + size]
        start += size
        parameters = tuple(value for row in chunk for value in row)
        connection.exec_driver_sql(head + ", ".join([row_markers] * size), parameters)


def _chunk_sizes(count: int, most: int) -> list[int]:
    """``count`` as a sum of powers of two, each at most ``most`` (largest first): few distinct statements."""
    largest = 1 << (max(1, most).bit_length() - 1)
    sizes = [largest] * (count // largest)
    rest = count % largest
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def _processed(row: tuple[Any, ...], processors: list[tuple[int, Any]]) -> tuple[Any, ...]:
    values = list(row)
    for index, processor in processors:
        if values[index] is not None:
            values[index] = processor(values[index])
    return tuple(values)
