"""Alembic environment: runs the gateway's migrations on the connection or URL it is given.

``runinfra_gateway.store.migrate.upgrade`` calls this with ``config.attributes["connection"]``;
the ``alembic`` command line works too (``-x url=...`` or ``sqlalchemy.url``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from runinfra_gateway.store.base import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("alembic: pass -x url=<database url> or set sqlalchemy.url")
    with create_engine(url).connect() as conn:
        _run(conn)
