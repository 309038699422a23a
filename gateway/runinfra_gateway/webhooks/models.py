"""Webhook tables: endpoints, the event outbox, deliveries and their attempts.

An event is written once (its exact JSON body included, so every retry and
replay sends the same bytes under the same ``id``); a delivery is that event
owed to one endpoint; an attempt is one HTTP try of a delivery.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from runinfra_gateway.store.base import Base
from runinfra_gateway.store.models import Workspace  # noqa: F401 - the workspaces table the foreign keys name

__all__ = [
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookUsageDigest",
    "WebhookWorkspaceSettings",
]


class WebhookEndpoint(Base):
    """A receiver URL of one workspace, its event filter and its (sealed) signing secrets."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), default="")
    # JSON list of event types; ["*"] receives every event.
    event_types: Mapped[str] = mapped_column(Text)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # The secret replaced by the last rotation keeps signing until this instant.
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    previous_secret_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class WebhookEvent(Base):
    """One event of one workspace, with the exact body every delivery of it sends."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # No foreign key: events are history, and the ledger emits for accounts by id alone.
    workspace_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))  # Unix seconds past 2038
    body: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_webhook_events_workspace_created", "workspace_id", "created_at"),)


class WebhookDelivery(Base):
    """An event owed to one endpoint: pending until delivered or given up on."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    # "event" (caused by a change), "replay" or "test".
    origin: Mapped[str] = mapped_column(String(16))
    # "pending", "delivered" or "failed".
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    # Set while a dispatcher holds the delivery; a lapsed lease means it died.
    lease_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One HTTP try of a delivery: what came back, how long it took, what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    endpoint_id: Mapped[str] = mapped_column(String(40), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "delivered", "retry", "failed" (given up) or "endpoint_disabled".
    outcome: Mapped[str] = mapped_column(String(24))
    next_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookWorkspaceSettings(Base):
    """Per-workspace webhook settings: the balance under which ``credits.low`` fires."""

    __tablename__ = "webhook_workspace_settings"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    credits_low_threshold_microcents: Mapped[int] = mapped_column(BigInteger)


class WebhookUsageDigest(Base):
    """Marks a workspace's ``usage.daily`` for one UTC day as sent (once, across restarts and replicas)."""

    __tablename__ = "webhook_usage_digests"

    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    event_id: Mapped[str] = mapped_column(String(40))
