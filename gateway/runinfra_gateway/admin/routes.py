"""The admin API under ``/admin/v1`` (Starlette routes over :mod:`admin.service`).

Every route needs ``Authorization: Bearer <admin token>``: a wrong or missing
token is 401; an ordinary API key is 403 ``permission_denied`` (it is a valid
credential, just not for this). Bodies are parsed as strictly as on /v1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from runinfra_gateway import errors
from runinfra_gateway.admin import service
from runinfra_gateway.auth.credentials import KEY_PREFIX
from runinfra_gateway.auth.keys import bearer_token
from runinfra_gateway.edge.body import check_content_type, parse_json_object
from runinfra_gateway.state import GatewayState

__all__ = ["authorize_admin", "create_admin_app", "query_limit", "read_json_body"]

_ADMIN_BODY_LIMIT = 1024 * 1024
Handler = Callable[[Request, GatewayState], Awaitable[Any]]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


async def authorize_admin(request: Request, state: GatewayState) -> None:
    """Pass only with the admin token: 401 for a wrong or missing one, 403 for an API key."""
    authorization = request.headers.get("authorization")
    raw = authorization.encode("latin-1") if authorization is not None else None
    token = bearer_token(raw)
    if token is not None and token.startswith(KEY_PREFIX):
        try:
            await state.keys.authenticate(raw)
        except errors.GatewayError:
            pass
        else:
            raise errors.permission_denied("API keys cannot use the admin API; use the admin token.")
    state.admin_token.check(raw)


async def read_json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object body, as strictly checked as on /v1 (1 MiB at most, typed errors)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > _ADMIN_BODY_LIMIT:
        raise errors.request_too_large(_ADMIN_BODY_LIMIT)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _ADMIN_BODY_LIMIT:
            raise errors.request_too_large(_ADMIN_BODY_LIMIT)
    content_type = request.headers.get("content-type")
    check_content_type(content_type.encode("latin-1") if content_type else None, b"application/json")
    return parse_json_object(raw)


def _endpoint(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        state: GatewayState = request.app.state.gateway
        try:
            await authorize_admin(request, state)
            result = await handler(request, state)
        except errors.GatewayError as exc:
            return Response(exc.body_bytes(), status_code=exc.status, headers=exc.headers,
                            media_type="application/json")
        if isinstance(result, list):
            return _json({"object": "list", "data": result}, status)
        return _json(result, status)

    return endpoint


async def _create_workspace(request: Request, state: GatewayState) -> Any:
    return await service.create_workspace(state, await read_json_body(request))


async def _list_workspaces(request: Request, state: GatewayState) -> Any:
    return await service.list_workspaces(state)


async def _get_credits(request: Request, state: GatewayState) -> Any:
    return await service.get_credits(state, request.path_params["workspace_id"])


async def _adjust_credits(request: Request, state: GatewayState) -> Any:
    return await service.adjust_credits(state, request.path_params["workspace_id"], await read_json_body(request))


async def _create_key(request: Request, state: GatewayState) -> Any:
    return await service.create_key(state, await read_json_body(request))


async def _list_keys(request: Request, state: GatewayState) -> Any:
    return await service.list_keys(state, request.query_params.get("workspace_id"))


async def _revoke_key(request: Request, state: GatewayState) -> Any:
    return await service.revoke_key(state, request.path_params["key_id"])


async def _list_deployments(request: Request, state: GatewayState) -> Any:
    return await service.list_deployments(state)


async def _register_deployment(request: Request, state: GatewayState) -> Any:
    return await service.register_deployment(state, await read_json_body(request))


async def _verify_deployment(request: Request, state: GatewayState) -> Any:
    return await service.verify_deployment(state, request.path_params["deployment_id"])


async def _list_pipelines(request: Request, state: GatewayState) -> Any:
    return await service.list_pipelines(state)


async def _create_pipeline(request: Request, state: GatewayState) -> Any:
    return await service.create_pipeline(state, await read_json_body(request))


def query_limit(request: Request, default: int) -> int:
    """The ``limit`` query parameter as written in ASCII digits (the service bounds its range)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit() also takes "²", which int() refuses
        raise errors.invalid_request("'limit' must be a positive integer.", param="limit")
    return int(raw)


async def _recent_requests(request: Request, state: GatewayState) -> Any:
    return await service.recent_requests(state, workspace_id=request.query_params.get("workspace_id"),
                                         limit=query_limit(request, 100))


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/workspaces", _endpoint(_create_workspace, 201), methods=["POST"]),
        Route("/workspaces", _endpoint(_list_workspaces), methods=["GET"]),
        Route("/workspaces/{workspace_id}/credits", _endpoint(_get_credits), methods=["GET"]),
        Route("/workspaces/{workspace_id}/credits", _endpoint(_adjust_credits), methods=["POST"]),
        Route("/keys", _endpoint(_create_key, 201), methods=["POST"]),
        Route("/keys", _endpoint(_list_keys), methods=["GET"]),
        Route("/keys/{key_id}", _endpoint(_revoke_key), methods=["DELETE"]),
        Route("/deployments", _endpoint(_list_deployments), methods=["GET"]),
        Route("/deployments", _endpoint(_register_deployment, 201), methods=["POST"]),
        Route("/deployments/{deployment_id:path}/verify", _endpoint(_verify_deployment), methods=["POST"]),
        Route("/pipelines", _endpoint(_list_pipelines), methods=["GET"]),
        Route("/pipelines", _endpoint(_create_pipeline, 201), methods=["POST"]),
        Route("/requests", _endpoint(_recent_requests), methods=["GET"]),
    ]
    try:  # the webhooks owner's endpoints live beside ours when that package is present
        from runinfra_gateway.webhooks.routes import routes as webhook_routes
    except ImportError:
        pass
    else:
        routes.append(Mount("/webhooks", routes=list(webhook_routes())))
    return routes


async def _not_found(request: Request, exc: Exception) -> Response:
    error = errors.not_found(request.url.path[:200])
    return Response(error.body_bytes(), status_code=404, media_type="application/json")


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    error = errors.method_not_allowed(request.method[:16], "GET, POST, DELETE")
    return Response(error.body_bytes(), status_code=405, headers=error.headers, media_type="application/json")


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The error's text stays in the log (Starlette re-raises it to the server): it may name tables and values.
    error = errors.internal_error()
    return Response(error.body_bytes(), status_code=error.status, media_type="application/json")


def create_admin_app(state: GatewayState) -> Starlette:
    app = Starlette(routes=_routes(),
                    exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: _internal_error})
    app.router.redirect_slashes = False  # a stray slash is a 404, not a redirect built from the Host header
    app.state.gateway = state
    return app
