"""The one SQLAlchemy declarative base every table of the gateway hangs off.

Tables live beside the code that owns them (``store/models.py`` for the core,
``webhooks/models.py`` for the outbox); all share this metadata so one Alembic
history creates them.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base"]


class Base(DeclarativeBase):
    """Declarative base for all gateway tables."""
