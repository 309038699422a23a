"""Persistence: the SQLAlchemy base, the database handle and the core tables."""

from runinfra_gateway.store.base import Base
from runinfra_gateway.store.database import Database

__all__ = ["Base", "Database"]
