"""The gateway's ASGI application: a thin dispatcher in front of /v1, health, metrics, admin, dashboard.

The /v1 path is plain ASGI (no framework objects per request): the edge makes
a :class:`~runinfra_gateway.v1.call.Call`, the router runs the handler, and
this module turns any :class:`GatewayError` into the error envelope and writes
exactly one log line, one metrics sample and one request-log row. Admin and
dashboard are Starlette apps mounted under their prefixes; every response,
theirs included, carries ``x-request-id``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO, cast

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from runinfra_gateway import errors
from runinfra_gateway.admin.routes import create_admin_app
from runinfra_gateway.edge import BODY_TIMED_OUT
from runinfra_gateway.edge.asgi import ASGIApp, Message, Receive, Scope, Send
from runinfra_gateway.edge.request_id import new_request_id
from runinfra_gateway.edge.responses import send_bytes, send_error, send_json
from runinfra_gateway.lifecycle import (
    close_gateway,
    open_gateway,
    reload_config,
    tune_gc_for_serving,
    verify_deployments,
)
from runinfra_gateway.peer_text import printable
from runinfra_gateway.settings import Settings
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.router import route_label, serve_v1

__all__ = ["GatewayApp", "create_app"]

logger = logging.getLogger("runinfra_gateway")
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"


def _with_request_id(send: Send, request_id: str) -> Send:
    """``send`` that adds ``x-request-id`` to the response start (for mounted sub-apps)."""
    header = (b"x-request-id", request_id.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return wrapped


class GatewayApp:
    """The ASGI callable uvicorn serves. The lifespan opens and closes the :class:`GatewayState`."""

    def __init__(self, settings: Settings, *, out: TextIO | None = None) -> None:
        self.settings = settings
        self._out = out
        self.state: GatewayState | None = None
        self._admin: ASGIApp | None = None
        self._dashboard: ASGIApp | None = None
        self._verifier: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        self._sighup = False

    # -- lifespan --------------------------------------------------------------------------------

    async def startup(self) -> None:
        state = await open_gateway(self.settings, out=self._out)
        self.state = state
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        print(f"runinfra: serving on http://{shown}:{self.settings.port}", file=self._out or sys.stdout, flush=True)
        state.access_log.start()
        state.request_log.start()
        self._admin = create_admin_app(state)
        self._dashboard = _dashboard(state)
        start_webhooks = getattr(state.webhooks, "start", None)
        if start_webhooks is not None:
            await start_webhooks()
        self._verifier = asyncio.get_running_loop().create_task(self._load_and_verify(state))
        if threading.current_thread() is threading.main_thread():  # signal handlers live on the main thread
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._schedule_reload)
            self._sighup = True

    async def _load_and_verify(self, state: GatewayState) -> None:
        await verify_deployments(state, out=self._out)
        tune_gc_for_serving()  # the models are loaded: everything alive now stays for the process's life

    def _schedule_reload(self) -> None:
        """SIGHUP: re-read the config file's workspaces, deployments and pipelines while serving goes on."""
        if self._reloading is not None and not self._reloading.done():
            print("runinfra: a reload is already running; send SIGHUP again once it is done",
                  file=self._out or sys.stdout, flush=True)
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        if self._verifier is not None and not self._verifier.done():
            await asyncio.wait([self._verifier])  # the start-up verification first (a cancel of ours still ends us)
        if self.state is not None:
            await reload_config(self.state, out=self._out)

    async def shutdown(self) -> None:
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in (self._verifier, self._reloading):
            if task is not None and not task.done():
                task.cancel()
        if self.state is not None:
            stop_webhooks = getattr(self.state.webhooks, "close", None)
            if stop_webhooks is not None:
                await stop_webhooks()
            await close_gateway(self.state)
            print("runinfra: stopped (in-flight requests drained, ledger flushed)", file=self._out or sys.stdout,
                  flush=True)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- requests --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/v1/"):
                await self._v1(scope, receive, send)
            else:
                await self._other(path, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _v1(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        started = time.perf_counter()
        call = Call(scope, receive, send, new_request_id(), started)
        if state is None:
            await call.respond_error(errors.deployment_error("The gateway is starting.", status=503,
                                                             retry_after_seconds=1))
            return
        state.metrics.in_flight.inc()
        try:
            await serve_v1(state, call)
        except errors.GatewayError as exc:
            if not call.response_started:
                await call.respond_error(exc)
            else:
                call.error_type = exc.type
        except asyncio.CancelledError:
            if not call.disconnected:
                raise
            call.status = 499
        except ConnectionAbortedError:
            if scope.get(BODY_TIMED_OUT):  # the protocol answered 408 and closed: the body stalled
                call.status = 408
                call.error_type = "invalid_request_error"
            else:
                call.status = 499
        except Exception:
            # The path is the client's (percent-decoded: %0a is a line break): one printable line in the log.
            logger.exception("unhandled error in %s %s (request %s)", printable(call.method, 16),
                             printable(call.path, 200), call.request_id)
            if not call.response_started:
                await call.respond_error(errors.internal_error())
        finally:
            call.stop_watching()
            state.metrics.in_flight.dec()
            self._record(state, call)

    def _record(self, state: GatewayState, call: Call) -> None:
        """One log line, one metrics sample, one request-log row (written later, in a batch)."""
        elapsed = time.perf_counter() - call.started
        status = call.status or 499
        key = call.key
        usage = call.usage
        deployment = call.deployment_id
        state.metrics.observe(route_label(call), status, elapsed)
        if usage is not None and deployment is not None:
            state.metrics.charged(deployment, call.cost_microcents, usage.input_tokens, usage.output_tokens)
        workspace_id = key.workspace_id if key is not None else None
        key_id = key.id if key is not None else None
        latency_ms = round(elapsed * 1000, 3)
        now = time.time()
        state.access_log.write({
            "ts": round(now, 3),
            "request_id": call.request_id,
            "client_request_id": call.client_request_id,
            "method": call.method,
            "path": call.path[:300],
            "status": status,
            "latency_ms": latency_ms,
            "workspace_id": workspace_id,
            "key_id": key_id,
            "pipeline_id": call.pipeline_id,
            "deployment": deployment,
            "operation": call.operation,
            "stream": call.stream,
            "usage": None if usage is None else {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "images": usage.images,
                "audio_seconds": usage.audio_seconds,
                "characters": usage.characters,
            },
            "cost_microcents": call.cost_microcents,
            "error_type": call.error_type,
            "replayed": call.replayed,
        })
        state.request_log.add((
            call.request_id, call.client_request_id, workspace_id, key_id, deployment, call.operation,
            call.method[:8], call.path[:300], status, call.error_type, latency_ms,
            usage.input_tokens if usage is not None else 0, usage.output_tokens if usage is not None else 0,
            call.cost_microcents, now,
        ))

    async def _other(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        state = self.state
        if path == "/healthz":
            await send_json(send, 200, {"status": "ok"}, request_id)
            return
        if state is None:
            await send_error(send, errors.deployment_error("The gateway is starting.", status=503,
                                                           retry_after_seconds=1), request_id)
            return
        if path == "/readyz":
            deployments = {r.id: r.status for r in state.registry.all()}
            if state.ready:
                await send_json(send, 200, {"status": "ready", "deployments": deployments}, request_id)
            else:
                await send_json(send, 503, {"status": "not_ready", "deployments": deployments}, request_id,
                                [(b"retry-after", b"2")])
            return
        if path == "/metrics":
            await send_bytes(send, 200, state.metrics.render(), _PROMETHEUS, request_id)
            return
        if path == "/admin/v1" or path.startswith("/admin/v1/"):
            assert self._admin is not None
            await self._admin(_sub_scope(scope, "/admin/v1"), receive, _with_request_id(send, request_id))
            return
        if self._dashboard is not None and path == "/dashboard":
            # A relative Location: Starlette's own slash redirect would name whatever Host the client sent.
            location = (scope.get("root_path", "") + "/dashboard/").encode()
            await send_bytes(send, 308, b"", b"text/plain", request_id, [(b"location", location)])
            return
        if self._dashboard is not None and path.startswith("/dashboard/"):
            await self._dashboard(_sub_scope(scope, "/dashboard"), receive, _with_request_id(send, request_id))
            return
        await send_error(send, errors.not_found(path[:200]), request_id)


def _sub_scope(scope: Scope, prefix: str) -> Scope:
    """The scope a mounted app sees: ``root_path`` extended by ``prefix`` (Starlette's Mount convention)."""
    child = dict(scope)
    child["root_path"] = scope.get("root_path", "") + prefix
    child["app_root_path"] = scope.get("root_path", "")
    return child


def _dashboard(state: GatewayState) -> ASGIApp | None:
    try:
        from runinfra_gateway.dashboard import create_app as create_dashboard
    except ImportError:
        return None
    # Only the dashboard reads the client's address and scheme (sign-in throttling, secure cookies), so only
    # it trusts X-Forwarded-* from a proxy on loopback (or FORWARDED_ALLOW_IPS); /v1 skips the middleware.
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
    # (uvicorn types ASGI strictly, Starlette loosely: the casts bridge the two spellings of one interface.)
    proxied = ProxyHeadersMiddleware(cast(Any, create_dashboard(state)), trusted_hosts=trusted)
    return cast(ASGIApp, proxied)


def create_app(settings: Settings, *, out: TextIO | None = None) -> GatewayApp:
    return GatewayApp(settings, out=out)
