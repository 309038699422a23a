"""``usage.daily``: one summary per workspace and UTC day, from the request log.

Sent only to workspaces with an enabled endpoint that receives ``usage.daily``,
once per day: a mark row is written in the same transaction as the event, so a
restart or a second replica never sends a day twice. The day is summarised a
little after midnight UTC (``usage_daily_delay_seconds``) so the request log's
batched writes for its last minutes have landed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from runinfra_gateway.store.models import RequestLog
from runinfra_gateway.webhooks.models import WebhookEndpoint, WebhookUsageDigest
from runinfra_gateway.webhooks.outbox import enqueue_event, subscribes

__all__ = ["day_to_summarise", "emit_due_usage_digests", "emit_usage_digests"]

_MICROCENTS_PER_CENT = 1_000_000


def day_to_summarise(now: datetime, delay_seconds: float) -> date:
    """The last UTC day that is over (and ``delay_seconds`` past) at ``now``."""
    return (now.astimezone(timezone.utc) - timedelta(seconds=delay_seconds)).date() - timedelta(days=1)


def _summary(session: Session, workspace_id: str, day: date) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
    rows = session.execute(
        select(
            RequestLog.operation,
            func.count(),
            func.sum(case((RequestLog.status >= 400, 1), else_=0)),
            func.coalesce(func.sum(RequestLog.input_tokens), 0),
            func.coalesce(func.sum(RequestLog.output_tokens), 0),
            func.coalesce(func.sum(RequestLog.cost_microcents), 0),
        )
        .where(
            RequestLog.workspace_id == workspace_id,
            RequestLog.created_at >= start,
            RequestLog.created_at < start + 86_400,
        )
        .group_by(RequestLog.operation)
    ).all()
    by_operation = {
        str(op or "other"): {"requests": int(n), "cost_cents": int(cost) / _MICROCENTS_PER_CENT}
        for op, n, _errors, _in, _out, cost in rows
    }
    return {
        "date": day.isoformat(),
        "requests": sum(int(r[1]) for r in rows),
        "errors": sum(int(r[2] or 0) for r in rows),
        "input_tokens": sum(int(r[3]) for r in rows),
        "output_tokens": sum(int(r[4]) for r in rows),
        "cost_cents": sum(int(r[5]) for r in rows) / _MICROCENTS_PER_CENT,
        "by_operation": by_operation,
    }


def emit_usage_digests(session: Session, day: date) -> list[str]:
    """Enqueue ``usage.daily`` for ``day`` to every subscribed workspace not yet sent it; returns event ids."""
    endpoints = session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)))
    workspaces = sorted({e.workspace_id for e in endpoints if subscribes(e, "usage.daily")})
    done = set(
        session.scalars(
            select(WebhookUsageDigest.workspace_id).where(
                WebhookUsageDigest.day == day.isoformat(), WebhookUsageDigest.workspace_id.in_(workspaces)
            )
        )
    )
    event_ids: list[str] = []
    for workspace in workspaces:
        if workspace in done:
            continue
        (event_id,) = enqueue_event(
            session, workspace_id=workspace, type="usage.daily", data=_summary(session, workspace, day)
        )
        session.add(WebhookUsageDigest(workspace_id=workspace, day=day.isoformat(), event_id=event_id))
        event_ids.append(event_id)
    return event_ids


def emit_due_usage_digests(session: Session, *, delay_seconds: float) -> list[str]:
    """``emit_usage_digests`` for the last UTC day that is over, now."""
    return emit_usage_digests(session, day_to_summarise(datetime.now(timezone.utc), delay_seconds))
