"""Alembic environment of the gateway (one history for every owner's tables; see ``store.migrate``)."""
