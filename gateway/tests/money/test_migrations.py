"""The billing and idempotency revisions, and the request log's, create exactly the tables their models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runinfra_gateway.billing import models as billing_models
from runinfra_gateway.idempotency import models as idempotency_models
from runinfra_gateway.store import Base, Database
from runinfra_gateway.store.models import RequestLog
from sqlalchemy import func, select, text

CHECKED_TABLES = {
    billing_models.CreditAccount.__tablename__,
    billing_models.LedgerEntry.__tablename__,
    billing_models.OpenHold.__tablename__,
    billing_models.JournalCheckpoint.__tablename__,
    idempotency_models.IdempotencyRecord.__tablename__,
    RequestLog.__tablename__,
}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    def table_of(difference: object) -> str | None:
        change = difference[0] if isinstance(difference, list) else difference
        for part in change if isinstance(change, tuple) else ():
            if isinstance(part, str):
                if part in CHECKED_TABLES:
                    return part
                continue
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None) in CHECKED_TABLES:
                return str(table.name)
            if name in CHECKED_TABLES:
                return str(name)
        return None

    ours = [difference for difference in differences if table_of(difference) is not None]
    assert ours == []
    with db.engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    assert set(heads) == {"0006_ledger_entry_ids", "0003_idempotency", "0004_request_log_epoch",
                          "0005_webhook_event_seconds"}


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_ledger_entry_ids_go_past_32_bits(db: Database) -> None:
    with db.engine.begin() as connection:
        if db.engine.dialect.name == "postgresql":
            connection.execute(text("SELECT setval('credit_ledger_id_seq', 2147483647)"))
        else:
            connection.execute(text("INSERT INTO credit_ledger (id, seq, workspace_id, kind, amount_microcents, "
                                    "created_at) VALUES (2147483647, 0, 'ws', 'grant', 1, 0)"))
    with db.session() as session:
        session.add(billing_models.LedgerEntry(seq=1, workspace_id="ws", kind="grant", amount_microcents=1,
                                               created_at=0.0))
    with db.session() as session:
        assert session.scalar(select(func.max(billing_models.LedgerEntry.id))) == 2**31
