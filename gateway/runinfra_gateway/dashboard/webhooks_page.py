"""The Webhooks page: a workspace's signed endpoints and their recent deliveries.

Everything goes through the webhooks engineer's ``WebhookService`` (on
``state.webhooks.service``); the page exists only when the gateway runs it. A
new or rotated signing secret travels in the server-side session and is shown
once, like an API key.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runinfra_gateway import errors
from runinfra_gateway.dashboard.auth import form_text, read_form
from runinfra_gateway.dashboard.render import prefix_of, render
from runinfra_gateway.dashboard.sessions import Session
from runinfra_gateway.state import GatewayState
from runinfra_gateway.webhooks import EVENT_TYPES

__all__ = ["WebhooksPage", "webhook_service"]

DELIVERIES_SHOWN = 25
_ACTIONS = ("test", "enable", "disable", "rotate", "delete")


def webhook_service(state: GatewayState) -> Any | None:
    """The webhook admin service when this gateway runs webhooks, else ``None``."""
    return getattr(state.webhooks, "service", None)


def _ticked_events(form: FormData) -> list[str]:
    """The event types ticked on the form; none ticked means every event (the admin API's ``["*"]``)."""
    chosen = [value for value in form.getlist("events") if isinstance(value, str)]
    return chosen or ["*"]


def _when(seconds: float | None) -> str:
    if not seconds:
        return "—"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


class WebhooksPage:
    def __init__(self, state: GatewayState, context: Any) -> None:
        self.state = state
        self._context = context  # Pages._context: the shared page context

    def _redirect(self, request: Request) -> Response:
        return RedirectResponse(f"{prefix_of(request)}/webhooks", status_code=303)

    async def page(self, request: Request, session: Session) -> Response:
        service = webhook_service(self.state)
        context = await self._context(session, "Webhooks", "webhooks")
        workspace_id = context["workspace_id"]
        endpoints: list[Any] = []
        deliveries: list[dict[str, Any]] = []
        if service is not None and workspace_id:
            endpoints = await service.list_endpoints(workspace_id)
            mine = {e.id for e in endpoints}
            events = {e["id"]: e for e in await service.list_events(workspace_id=workspace_id, limit=200)}
            for delivery in await service.list_deliveries(limit=200):
                if delivery["endpoint_id"] in mine and len(deliveries) < DELIVERIES_SHOWN:
                    attempts = delivery.get("attempt_log") or []
                    last = attempts[-1] if attempts else {}
                    deliveries.append({
                        **delivery,
                        "type": events.get(delivery["event_id"], {}).get("type", "—"),
                        "created": _when(delivery.get("created_at")),
                        "last_status": last.get("status"),
                        "last_latency_ms": last.get("latency_ms"),
                    })
        context.update(
            available=service is not None,
            endpoints=[{**e.to_dict(), "created_text": _when(e.created)} for e in endpoints],
            deliveries=deliveries,
            new_secret=session.pop_pending_secret("webhook"),
            event_types=EVENT_TYPES,
        )
        return render(request, "webhooks.html", context, session=session)

    async def create(self, request: Request, session: Session) -> Response:
        service = webhook_service(self.state)
        form = await read_form(request)
        if service is None:
            return self._redirect(request)
        try:
            created = await service.create_endpoint(
                workspace_id=form_text(form, "workspace_id") or session.workspace_id,
                url=form_text(form, "url"),
                events=_ticked_events(form),
                description=form_text(form, "description"),
            )
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        else:
            session.pending_secret = {"kind": "webhook", "secret": created.secret or "", "id": created.id,
                                      "url": created.url}
        return self._redirect(request)

    async def act(self, request: Request, session: Session) -> Response:
        service = webhook_service(self.state)
        form = await read_form(request)
        endpoint_id, action = form_text(form, "endpoint_id"), form_text(form, "action")
        if service is None or action not in _ACTIONS:
            session.flash.append(("error", "Unknown webhook action."))
            return self._redirect(request)
        try:
            endpoint = await self._own_endpoint(service, session, endpoint_id)
            if action == "test":
                await service.send_test(endpoint_id)
                wake = getattr(self.state.webhooks, "wake", None)
                if wake is not None:
                    wake()
                session.flash.append(("ok", f"A webhook.test event is on its way to {endpoint.url}."))
            elif action == "delete":
                await service.delete_endpoint(endpoint_id)
                session.flash.append(("ok", f"Endpoint {endpoint.url} is deleted."))
            elif action in ("enable", "disable"):
                await service.set_enabled(endpoint_id, action == "enable")
                session.flash.append(("ok", f"Endpoint {endpoint.url} is {action}d."))
            else:
                rotated = await service.rotate_secret(endpoint_id)
                session.pending_secret = {"kind": "webhook", "secret": rotated.secret or "", "id": rotated.id,
                                          "url": rotated.url}
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        return self._redirect(request)

    async def edit(self, request: Request, session: Session) -> Response:
        """Change an endpoint's URL, event types and description; its id, secret and deliveries stay."""
        service = webhook_service(self.state)
        form = await read_form(request)
        if service is None:
            return self._redirect(request)
        endpoint_id = form_text(form, "endpoint_id")
        try:
            await self._own_endpoint(service, session, endpoint_id)
            updated = await service.update_endpoint(endpoint_id, {
                "url": form_text(form, "url"),
                "events": _ticked_events(form),
                "description": form_text(form, "description"),
            })
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        else:
            session.flash.append(("ok", f"Endpoint {updated.url} is updated."))
        return self._redirect(request)

    async def _own_endpoint(self, service: Any, session: Session, endpoint_id: str) -> Any:
        """The endpoint, if it belongs to the session's workspace (another workspace's is as good as absent)."""
        endpoint = await service.get_endpoint(endpoint_id)
        if endpoint.workspace_id != session.workspace_id:
            raise errors.GatewayError(404, "not_found_error", "No such webhook endpoint in this workspace.")
        return endpoint
