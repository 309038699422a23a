"""The idempotency table: one row per (API key, Idempotency-Key) for 24 hours (the retention)."""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runinfra_gateway.store.base import Base

__all__ = ["IdempotencyRecord"]


class IdempotencyRecord(Base):
    """A request made under an Idempotency-Key and, once finished, the response to replay.

    ``state``: ``in_flight`` (running, or abandoned by a crash), ``complete`` (status,
    headers and body stored), ``too_large`` (finished, body over the replay limit: only
    the fact is kept), ``lost`` (charged, but the process died before the response was
    stored: never re-run, never replayed).
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_expires_at", "expires_at"),)

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(64), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)
