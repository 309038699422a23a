"""Admin routes under ``/admin/v1/webhooks`` (the core mounts :func:`routes` beside its own).

Same admin-token auth, body parsing and error envelope as the rest of the admin
API; lists are ``{"object": "list", "data": [...]}``. The signing secret appears
only in the answers to create (201) and rotate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from runinfra_gateway import errors

# The core's admin helpers: one admin-token check and one body parser for the whole admin API.
from runinfra_gateway.admin.routes import authorize_admin, query_limit, read_json_body
from runinfra_gateway.webhooks.service import WebhookService, endpoint_payload, only_fields

__all__ = ["routes"]

Handler = Callable[[Request, WebhookService], Awaitable[Any]]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _service(request: Request) -> WebhookService:
    runtime = getattr(request.app.state.gateway, "webhooks", None)
    service = getattr(runtime, "service", None)
    if not isinstance(service, WebhookService):
        raise errors.deployment_error("Webhooks are not enabled on this gateway.", status=503, retry_after_seconds=60)
    return service


def _endpoint(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            await authorize_admin(request, request.app.state.gateway)
            result = await handler(request, _service(request))
        except errors.GatewayError as exc:
            return Response(
                exc.body_bytes(), status_code=exc.status, headers=exc.headers, media_type="application/json"
            )
        if isinstance(result, list):
            return _json({"object": "list", "data": result}, status)
        return _json(result, status)

    return endpoint


async def _body(request: Request, *, optional: bool = False) -> dict[str, Any]:
    # An action route (rotate, replay) may be POSTed with no body at all: its fields are optional.
    no_body = request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers
    if optional and no_body:
        return {}
    return await read_json_body(request)


async def _create(request: Request, service: WebhookService) -> Any:
    view = await service.create_endpoint(**endpoint_payload(await _body(request)))
    return view.to_dict()


async def _list(request: Request, service: WebhookService) -> Any:
    return [v.to_dict() for v in await service.list_endpoints(request.query_params.get("workspace_id"))]


async def _get(request: Request, service: WebhookService) -> Any:
    return (await service.get_endpoint(request.path_params["endpoint_id"])).to_dict()


async def _update(request: Request, service: WebhookService) -> Any:
    return (await service.update_endpoint(request.path_params["endpoint_id"], await _body(request))).to_dict()


async def _delete(request: Request, service: WebhookService) -> Any:
    return await service.delete_endpoint(request.path_params["endpoint_id"])


async def _disable(request: Request, service: WebhookService) -> Any:
    return (await service.set_enabled(request.path_params["endpoint_id"], False)).to_dict()


async def _enable(request: Request, service: WebhookService) -> Any:
    return (await service.set_enabled(request.path_params["endpoint_id"], True)).to_dict()


async def _rotate(request: Request, service: WebhookService) -> Any:
    body = only_fields(await _body(request, optional=True), {"overlap_seconds"})
    view = await service.rotate_secret(request.path_params["endpoint_id"], overlap_seconds=body.get("overlap_seconds"))
    return view.to_dict()


async def _test(request: Request, service: WebhookService) -> Any:
    return await service.send_test(request.path_params["endpoint_id"])


async def _deliveries(request: Request, service: WebhookService) -> Any:
    return await service.list_deliveries(
        endpoint_id=request.query_params.get("endpoint_id"),
        event_id=request.query_params.get("event_id"),
        limit=query_limit(request, 50),
    )


async def _events(request: Request, service: WebhookService) -> Any:
    workspace_id = request.query_params.get("workspace_id")
    return await service.list_events(workspace_id=workspace_id, limit=query_limit(request, 50))


async def _replay(request: Request, service: WebhookService) -> Any:
    body = only_fields(await _body(request, optional=True), {"endpoint_id"})
    endpoint_id = body.get("endpoint_id")
    if endpoint_id is not None and not isinstance(endpoint_id, str):
        raise errors.invalid_request("endpoint_id must be a string.", param="endpoint_id")
    return await service.replay(request.path_params["event_id"], endpoint_id=endpoint_id)


async def _threshold(request: Request, service: WebhookService) -> Any:
    body = only_fields(await _body(request), {"cents"})
    if "cents" not in body:
        raise errors.invalid_request("cents is required.", code="missing_field", param="cents")
    return await service.set_credits_low_threshold(request.path_params["workspace_id"], body["cents"])


def routes() -> list[BaseRoute]:
    """The webhook admin routes, relative to ``/admin/v1/webhooks``."""
    return [
        Route("/endpoints", _endpoint(_create, 201), methods=["POST"]),
        Route("/endpoints", _endpoint(_list), methods=["GET"]),
        Route("/endpoints/{endpoint_id}", _endpoint(_get), methods=["GET"]),
        Route("/endpoints/{endpoint_id}", _endpoint(_update), methods=["PATCH"]),
        Route("/endpoints/{endpoint_id}", _endpoint(_delete), methods=["DELETE"]),
        Route("/endpoints/{endpoint_id}/disable", _endpoint(_disable), methods=["POST"]),
        Route("/endpoints/{endpoint_id}/enable", _endpoint(_enable), methods=["POST"]),
        Route("/endpoints/{endpoint_id}/rotate", _endpoint(_rotate), methods=["POST"]),
        Route("/endpoints/{endpoint_id}/test", _endpoint(_test, 202), methods=["POST"]),
        Route("/deliveries", _endpoint(_deliveries), methods=["GET"]),
        Route("/events", _endpoint(_events), methods=["GET"]),
        Route("/events/{event_id}/replay", _endpoint(_replay, 202), methods=["POST"]),
        Route("/workspaces/{workspace_id}/credits-low-threshold", _endpoint(_threshold), methods=["PUT"]),
    ]
