"""Retention: events older than ``retention_days`` go, with their deliveries and attempts.

An event with a delivery still pending is kept whatever its age, so nothing owed
is ever dropped. Work is done in batches so one run never holds the database long.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from runinfra_gateway.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookUsageDigest

__all__ = ["purge_expired"]

_BATCH = 1_000
_DAY = 86_400


def purge_expired(session: Session, *, retention_days: float, now: float | None = None) -> int:
    """Delete up to one batch of expired, settled events (and their deliveries and attempts); returns how many."""
    if retention_days <= 0:
        return 0
    cutoff = (time.time() if now is None else now) - retention_days * _DAY
    pending = exists().where(WebhookDelivery.event_id == WebhookEvent.id, WebhookDelivery.state == "pending")
    expired = list(
        session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.created_at < cutoff, ~pending).limit(_BATCH)
        )
    )
    if expired:
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.event_id.in_(expired)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(expired)))
        session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(expired)))
    oldest_day = datetime.fromtimestamp(cutoff, timezone.utc).date().isoformat()
    session.execute(delete(WebhookUsageDigest).where(WebhookUsageDigest.day < oldest_day))
    return len(expired)
