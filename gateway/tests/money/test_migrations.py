"""The billing and idempotency revisions, and the request log's, create exactly the tables their models declare."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from runinfra_gateway.billing import models as billing_models
from runinfra_gateway.idempotency import models as idempotency_models
from runinfra_gateway.store import Base, Database
from runinfra_gateway.store.models import RequestLog

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
    assert {"0002_billing", "0003_idempotency", "0004_request_log_epoch"} <= set(heads)
