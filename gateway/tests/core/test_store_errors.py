"""A statement that fails on the real database names no values: its error reaches logs, and values hold hashes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.store.models import Workspace
from sqlalchemy.exc import IntegrityError

MARKER = "value-that-must-not-be-logged"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_a_failed_statement_does_not_carry_its_parameters(db: Database) -> None:
    now = datetime.now(timezone.utc)
    with db.session() as session:
        session.add(Workspace(id="ws_1", name="first", created=now))
    with pytest.raises(IntegrityError) as failed, db.session() as session:
        session.add(Workspace(id="ws_1", name=MARKER, created=now))
    assert MARKER not in str(failed.value)
    assert "hidden" in str(failed.value)  # SQLAlchemy says the parameters were withheld
