"""The durable outbox: events are written in the transaction of the change that caused them.

``enqueue_event`` is the hook the rest of the gateway calls (key created or
revoked, deployment verified or failed, credits crossing a threshold). It writes
the event and one pending delivery per subscribed, enabled endpoint into the
caller's session, so the event exists exactly when the change commits; the
dispatcher picks the deliveries up from there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from sqlalchemy import event as orm_events
from sqlalchemy import select
from sqlalchemy.orm import Session

from runinfra_gateway.webhooks.events import EVENT_TYPES, WILDCARD, event_body, new_id
from runinfra_gateway.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

__all__ = [
    "add_commit_listener",
    "enqueue_event",
    "record_event",
    "remove_commit_listener",
    "schedule_delivery",
    "subscribes",
]


# Called (on the database thread) after a transaction that enqueued deliveries commits,
# so a dispatcher in this process sends them now rather than at its next poll.
_commit_listeners: list[Callable[[], object]] = []


def add_commit_listener(listener: Callable[[], object]) -> None:
    _commit_listeners.append(listener)


def remove_commit_listener(listener: Callable[[], object]) -> None:
    with contextlib.suppress(ValueError):
        _commit_listeners.remove(listener)


def _committed(_session: Session) -> None:
    for listener in list(_commit_listeners):
        # The change is committed whatever happens here: a listener's failure (its loop
        # already closed) must never reach the caller, whose work succeeded.
        with contextlib.suppress(Exception):
            listener()


def _notify_on_commit(session: Session) -> None:
    if not orm_events.contains(session, "after_commit", _committed):
        orm_events.listen(session, "after_commit", _committed, once=True)


def subscribes(endpoint: WebhookEndpoint, type: str) -> bool:
    """Whether ``endpoint``'s event filter includes ``type``."""
    types = orjson.loads(endpoint.event_types)
    return WILDCARD in types or type in types


def enqueue_event(
    session: Session, *, workspace_id: str | None, type: str, data: Mapping[str, Any]
) -> list[str]:
    """Record an event for ``workspace_id`` (``None``: every workspace with a subscribed endpoint).

    Returns the ids of the events written. Runs inside the caller's transaction:
    if the caller rolls back, no event was ever sent.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    query = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
    if workspace_id is not None:
        query = query.where(WebhookEndpoint.workspace_id == workspace_id)
    endpoints = [e for e in session.scalars(query) if subscribes(e, type)]
    by_workspace: dict[str, list[WebhookEndpoint]] = {}
    for endpoint in endpoints:
        by_workspace.setdefault(endpoint.workspace_id, []).append(endpoint)
    if workspace_id is not None:
        by_workspace.setdefault(workspace_id, [])
    event_ids = []
    for workspace, targets in sorted(by_workspace.items()):
        event = record_event(session, workspace_id=workspace, type=type, data=data)
        for endpoint in targets:
            schedule_delivery(session, event_id=event.id, endpoint_id=endpoint.id, origin="event")
        if targets:
            _notify_on_commit(session)
        event_ids.append(event.id)
    return event_ids


def record_event(session: Session, *, workspace_id: str, type: str, data: Mapping[str, Any]) -> WebhookEvent:
    """Write one event row (its body fixed now, for every retry and replay)."""
    created = int(time.time())
    event_id = new_id("evt")
    body = event_body(event_id=event_id, type=type, created=created, workspace_id=workspace_id, data=data)
    event = WebhookEvent(id=event_id, workspace_id=workspace_id, type=type, created_at=created, body=body)
    session.add(event)
    session.flush()  # the deliveries that follow reference it
    return event


def schedule_delivery(session: Session, *, event_id: str, endpoint_id: str, origin: str) -> WebhookDelivery:
    """Owe ``event_id`` to ``endpoint_id``, due now."""
    now = time.time()
    delivery = WebhookDelivery(
        id=new_id("whd"),
        event_id=event_id,
        endpoint_id=endpoint_id,
        origin=origin,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    return delivery
