"""Webhook administration: endpoints, secret rotation, test events, the delivery log, replay.

Plain async functions over the database, shared by the admin HTTP routes, the
CLI (through those routes) and the dashboard. A signing secret leaves this
module only in the answer to ``create_endpoint`` and ``rotate_secret``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.real_numbers import is_number
from runinfra_gateway.store import Database
from runinfra_gateway.store.models import Workspace
from runinfra_gateway.webhooks.events import new_id, validate_event_filter
from runinfra_gateway.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookWorkspaceSettings,
)
from runinfra_gateway.webhooks.outbox import record_event, schedule_delivery, subscribes
from runinfra_gateway.webhooks.secret_box import SecretBox, new_signing_secret
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.url_policy import UrlRefused, parse_endpoint_url, resolve_checked

__all__ = ["EndpointView", "WebhookService", "endpoint_payload", "only_fields"]

MAX_DESCRIPTION = 500
MAX_LIST = 500


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as the admin API shows it (``secret`` only right after create/rotate)."""

    id: str
    workspace_id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created: int
    previous_secret_expires: int | None
    secret: str | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["object"] = "webhook_endpoint"
        if self.secret is None:
            del data["secret"]
        return data


def _view(endpoint: WebhookEndpoint, *, secret: str | None = None, now: float | None = None) -> EndpointView:
    now = time.time() if now is None else now
    expires = endpoint.previous_secret_expires_at
    live_previous = endpoint.previous_secret_sealed is not None and expires is not None and expires > now
    return EndpointView(
        id=endpoint.id,
        workspace_id=endpoint.workspace_id,
        url=endpoint.url,
        description=endpoint.description,
        events=list(orjson.loads(endpoint.event_types)),
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        created=int(endpoint.created_at),
        previous_secret_expires=int(expires) if live_previous and expires is not None else None,
        secret=secret,
    )


def _event_dict(event: WebhookEvent) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(event.body)
    return {"object": "webhook_event", **body}


def _attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "object": "webhook_attempt",
        "delivery_id": attempt.delivery_id,
        "event_id": attempt.event_id,
        "endpoint_id": attempt.endpoint_id,
        "attempt": attempt.attempt,
        "started_at": attempt.started_at,
        "status": attempt.status,
        "latency_ms": round(attempt.latency_ms, 1),
        "error": attempt.error,
        "outcome": attempt.outcome,
        "next_attempt_at": attempt.next_attempt_at,
        "response_excerpt": attempt.response_excerpt,
    }


def _delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "object": "webhook_delivery",
        "id": delivery.id,
        "event_id": delivery.event_id,
        "endpoint_id": delivery.endpoint_id,
        "origin": delivery.origin,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at if delivery.state == "pending" else None,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
    }


def _not_found(kind: str, ident: str) -> errors.GatewayError:
    return errors.GatewayError(404, "not_found_error", f"No {kind} with id {ident!r}.", code="not_found")


def _endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id) if isinstance(endpoint_id, str) else None
    if endpoint is None:
        raise _not_found("webhook endpoint", str(endpoint_id))
    return endpoint


def _require_workspace(session: Session, workspace_id: object) -> str:
    if not isinstance(workspace_id, str) or not workspace_id:
        raise errors.invalid_request(
            "workspace_id must be a non-empty string.", code="missing_field", param="workspace_id"
        )
    if session.get(Workspace, workspace_id) is None:
        raise _not_found("workspace", workspace_id)
    return workspace_id


def _event_filter(events: object) -> list[str]:
    try:
        return validate_event_filter(events)
    except ValueError as exc:
        raise errors.invalid_request(str(exc), param="events") from None


def _check_description(description: object) -> str:
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise errors.invalid_request(
            f"description must be a string of at most {MAX_DESCRIPTION} characters.", param="description"
        )
    return description


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise errors.invalid_request(f"limit must be an integer from 1 to {MAX_LIST}.", param="limit")
    return limit


class WebhookService:
    """The operations behind ``/admin/v1/webhooks`` and ``runinfra webhooks``."""

    def __init__(
        self, db: Database, settings: WebhookSettings, box: SecretBox, *, on_enqueued: Callable[[], None] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.box = box
        # Tells the dispatcher a test or replay is due now (it would find it at its next poll anyway).
        self.on_enqueued: Callable[[], None] = on_enqueued or (lambda: None)

    async def check_url(self, url: object) -> str:
        """Refuse URLs the policy forbids, resolving the host now when it resolves (it may not yet)."""
        try:
            parsed = parse_endpoint_url(url if isinstance(url, str) else "", self.settings)
            if not parsed.host_allowed:
                # Not resolvable from here right now is no refusal: every delivery checks again.
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(resolve_checked(parsed.host, parsed.port, self.settings), 5.0)
        except UrlRefused as exc:
            raise errors.invalid_request(f"Webhook URL refused: {exc}.", param="url") from None
        return parsed.url

    async def create_endpoint(
        self, *, workspace_id: object = None, url: object = None, events: object = None, description: object = ""
    ) -> EndpointView:
        checked_url = await self.check_url(url)
        types = _event_filter(events)
        checked_description = _check_description(description)

        def create(session: Session) -> EndpointView:
            workspace = _require_workspace(session, workspace_id)
            now = time.time()
            endpoint_id = new_id("we")
            secret = new_signing_secret()
            endpoint = WebhookEndpoint(
                id=endpoint_id,
                workspace_id=workspace,
                url=checked_url,
                description=checked_description,
                event_types=orjson.dumps(types).decode(),
                secret_sealed=self.box.seal(secret, endpoint_id=endpoint_id),
                enabled=True,
                created_at=now,
                updated_at=now,
            )
            session.add(endpoint)
            return _view(endpoint, secret=secret, now=now)

        return await self.db.run(create)

    async def list_endpoints(self, workspace_id: str | None = None) -> list[EndpointView]:
        def query(session: Session) -> list[EndpointView]:
            stmt = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)
            if workspace_id is not None:
                stmt = stmt.where(WebhookEndpoint.workspace_id == workspace_id)
            return [_view(e) for e in session.scalars(stmt)]

        return await self.db.run(query)

    async def get_endpoint(self, endpoint_id: str) -> EndpointView:
        return await self.db.run(lambda session: _view(_endpoint(session, endpoint_id)))

    async def set_enabled(self, endpoint_id: str, enabled: bool) -> EndpointView:
        def change(session: Session) -> EndpointView:
            endpoint = _endpoint(session, endpoint_id)
            endpoint.enabled = enabled
            endpoint.disabled_reason = None if enabled else "disabled by the operator"
            endpoint.updated_at = time.time()
            return _view(endpoint)

        return await self.db.run(change)

    async def update_endpoint(self, endpoint_id: str, changes: Mapping[str, Any]) -> EndpointView:
        """Change an endpoint's ``url``, ``events`` or ``description``; its id and secret stay.

        Deliveries not yet made go to the new URL; a new event filter applies to events from now on.
        """
        only_fields(changes, {"url", "events", "description"})
        if not changes:
            raise errors.invalid_request("Give at least one of url, events, description to change.")
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = await self.check_url(changes["url"])
        if "events" in changes:
            values["event_types"] = orjson.dumps(_event_filter(changes["events"])).decode()
        if "description" in changes:
            values["description"] = _check_description(changes["description"])

        def change(session: Session) -> EndpointView:
            endpoint = _endpoint(session, endpoint_id)
            for column, value in values.items():
                setattr(endpoint, column, value)
            endpoint.updated_at = time.time()
            return _view(endpoint)

        return await self.db.run(change)

    async def delete_endpoint(self, endpoint_id: str) -> dict[str, Any]:
        """Remove the endpoint with its sealed secrets and its deliveries (pending or past, with their attempts).

        Its workspace's events stay: they can be replayed to another endpoint. A delivery in flight
        when this commits still reaches the receiver; the dispatcher then finds nothing to record it on.
        """

        def remove(session: Session) -> dict[str, Any]:
            endpoint = _endpoint(session, endpoint_id)
            session.execute(delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id))
            session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
            session.delete(endpoint)
            return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}

        return await self.db.run(remove)

    async def rotate_secret(self, endpoint_id: str, *, overlap_seconds: object = None) -> EndpointView:
        """A new secret (returned once); the old one keeps signing for ``overlap_seconds``."""
        overlap = self.settings.rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
        if not is_number(overlap) or not 0 <= overlap <= 30 * 86_400:
            raise errors.invalid_request(
                "overlap_seconds must be a number from 0 to 2592000 (30 days).", param="overlap_seconds"
            )

        def rotate(session: Session) -> EndpointView:
            endpoint = _endpoint(session, endpoint_id)
            now = time.time()
            secret = new_signing_secret()
            current = self.box.open(endpoint.secret_sealed, endpoint_id=endpoint.id)
            endpoint.previous_secret_sealed = self.box.seal(current, endpoint_id=endpoint.id) if overlap > 0 else None
            endpoint.previous_secret_expires_at = now + float(overlap) if overlap > 0 else None
            endpoint.secret_sealed = self.box.seal(secret, endpoint_id=endpoint.id)
            endpoint.updated_at = now
            return _view(endpoint, secret=secret, now=now)

        return await self.db.run(rotate)

    async def send_test(self, endpoint_id: str) -> dict[str, Any]:
        """Queue a ``webhook.test`` event for this (enabled) endpoint only, whatever its event filter."""

        def enqueue(session: Session) -> dict[str, Any]:
            endpoint = _endpoint(session, endpoint_id)
            if not endpoint.enabled:
                raise errors.invalid_request(
                    f"Webhook endpoint {endpoint.id!r} is disabled; enable it first.", param="endpoint_id"
                )
            event = record_event(
                session,
                workspace_id=endpoint.workspace_id,
                type="webhook.test",
                data={"endpoint_id": endpoint.id, "message": "A test event from the runinfra gateway."},
            )
            delivery = schedule_delivery(session, event_id=event.id, endpoint_id=endpoint.id, origin="test")
            return {"event": _event_dict(event), "delivery": _delivery_dict(delivery)}

        queued = await self.db.run(enqueue)
        self.on_enqueued()
        return queued

    async def list_events(self, *, workspace_id: str | None = None, limit: object = 50) -> list[dict[str, Any]]:
        count = _limit(limit)

        def query(session: Session) -> list[dict[str, Any]]:
            stmt = select(WebhookEvent).order_by(WebhookEvent.created_at.desc(), WebhookEvent.id).limit(count)
            if workspace_id is not None:
                stmt = stmt.where(WebhookEvent.workspace_id == workspace_id)
            return [_event_dict(e) for e in session.scalars(stmt)]

        return await self.db.run(query)

    async def list_deliveries(
        self, *, endpoint_id: str | None = None, event_id: str | None = None, limit: object = 50
    ) -> list[dict[str, Any]]:
        """Deliveries, newest first, each with its attempts (status, latency, error)."""
        count = _limit(limit)

        def query(session: Session) -> list[dict[str, Any]]:
            stmt = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc()).limit(count)
            if endpoint_id is not None:
                stmt = stmt.where(WebhookDelivery.endpoint_id == endpoint_id)
            if event_id is not None:
                stmt = stmt.where(WebhookDelivery.event_id == event_id)
            deliveries = list(session.scalars(stmt))
            attempts: dict[str, list[dict[str, Any]]] = {d.id: [] for d in deliveries}
            if deliveries:
                for attempt in session.scalars(
                    select(WebhookAttempt)
                    .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                    .order_by(WebhookAttempt.id)
                ):
                    attempts[attempt.delivery_id].append(_attempt_dict(attempt))
            return [{**_delivery_dict(d), "attempt_log": attempts[d.id]} for d in deliveries]

        return await self.db.run(query)

    async def replay(self, event_id: str, *, endpoint_id: str | None = None) -> list[dict[str, Any]]:
        """Send a past event again (same ``id``, same body) to one endpoint or to every subscribed one."""

        def enqueue(session: Session) -> list[dict[str, Any]]:
            event = session.get(WebhookEvent, event_id)
            if event is None:
                raise _not_found("webhook event", event_id)
            if endpoint_id is not None:
                endpoint = _endpoint(session, endpoint_id)
                if endpoint.workspace_id != event.workspace_id:
                    raise _not_found("webhook endpoint", endpoint_id)
                if not endpoint.enabled:
                    raise errors.invalid_request(
                        f"Webhook endpoint {endpoint.id!r} is disabled; enable it first.", param="endpoint_id"
                    )
                targets = [endpoint]
            else:
                targets = [
                    e
                    for e in session.scalars(
                        select(WebhookEndpoint).where(
                            WebhookEndpoint.workspace_id == event.workspace_id, WebhookEndpoint.enabled.is_(True)
                        )
                    )
                    if subscribes(e, event.type)
                ]
                if not targets:
                    raise errors.invalid_request(
                        f"No enabled webhook endpoint of workspace {event.workspace_id!r} receives {event.type!r}.",
                        param="endpoint_id",
                    )
            return [
                _delivery_dict(schedule_delivery(session, event_id=event.id, endpoint_id=t.id, origin="replay"))
                for t in targets
            ]

        queued = await self.db.run(enqueue)
        self.on_enqueued()
        return queued

    async def set_credits_low_threshold(self, workspace_id: str, cents: object) -> dict[str, Any]:
        """The balance (cents) under which ``credits.low`` fires for ``workspace_id``."""
        if not is_number(cents) or not 0 <= cents <= 10**12:
            raise errors.invalid_request("cents must be a non-negative number.", param="cents")
        microcents = round(cents * 1_000_000)

        def store(session: Session) -> dict[str, Any]:
            _require_workspace(session, workspace_id)
            row = session.get(WebhookWorkspaceSettings, workspace_id)
            if row is None:
                session.add(
                    WebhookWorkspaceSettings(workspace_id=workspace_id, credits_low_threshold_microcents=microcents)
                )
            else:
                row.credits_low_threshold_microcents = microcents
            return {"workspace_id": workspace_id, "credits_low_threshold_cents": microcents / 1_000_000}

        return await self.db.run(store)


def only_fields(body: Mapping[str, Any], allowed: set[str]) -> Mapping[str, Any]:
    """Refuse, by name, a field the webhook admin API does not know."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise errors.GatewayError(
            400,
            "invalid_request_error",
            f"Unknown field {unknown[0][:100]!r}; allowed: {', '.join(sorted(allowed))}.",
            code="unsupported_parameter",
            param=unknown[0][:100],
        )
    return body


def endpoint_payload(body: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``create_endpoint`` from a JSON body (unknown fields refused by name)."""
    allowed = {"workspace_id", "url", "events", "description"}
    only_fields(body, allowed)
    if "url" not in body:
        raise errors.invalid_request("url is required.", code="missing_field", param="url")
    return {key: body[key] for key in allowed if key in body}
