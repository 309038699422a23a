"""The webhook hook: record an event in the caller's transaction, if the webhooks package is installed."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy.orm import Session

__all__ = ["emit"]


def emit(session: Session, *, workspace_id: str | None, type: str, data: Mapping[str, Any]) -> None:
    try:
        from runinfra_gateway.webhooks.outbox import enqueue_event
    except ImportError:  # a gateway built without webhooks
        return
    enqueue_event(session, workspace_id=workspace_id, type=type, data=dict(data))
