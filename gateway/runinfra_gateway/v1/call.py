"""One request in flight: what the edge learnt about it, and what the log line will say.

A :class:`Call` travels through the request path; each stage fills in what it
decides (key, deployment, usage, cost), and the app writes one log line and
one metrics sample from it when the request ends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.edge.asgi import Receive, Scope, Send
from runinfra_gateway.edge.request_id import client_request_id
from runinfra_gateway.edge.responses import JSON, error_headers

if TYPE_CHECKING:
    from runinfra_gateway.auth import KeyRecord
    from runinfra_gateway.billing import Usage

__all__ = ["Call"]

_IDEMPOTENCY_KEY = re.compile(rb"^[\x20-\x7e]{1,255}$")
_REPLAY_HEADER = (b"x-runinfra-idempotent-replay", b"true")
#: How long a request runs before a task starts watching for its client to leave.
_WATCH_AFTER_SECONDS = 0.05


class Call:
    """The request, its response state and its accounting."""

    __slots__ = (
        "_watch_timer",
        "_watcher",
        "client_request_id",
        "cost_microcents",
        "deployment_id",
        "disconnected",
        "error_type",
        "headers",
        "key",
        "method",
        "operation",
        "path",
        "pipeline_id",
        "receive",
        "replayed",
        "request_id",
        "response_started",
        "scope",
        "send",
        "started",
        "status",
        "stream",
        "usage",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send, request_id: str, started: float) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.request_id = request_id
        self.started = started
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self.client_request_id = client_request_id(self.headers.get(b"x-client-request-id"))
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.key: KeyRecord | None = None
        self.pipeline_id: str | None = None
        self.deployment_id: str | None = None
        self.operation: str | None = None
        self.usage: Usage | None = None
        self.cost_microcents = 0
        self.status = 0
        self.error_type: str | None = None
        self.stream = False
        self.replayed = False
        self.response_started = False
        self.disconnected = False
        self._watch_timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None

    # -- request ---------------------------------------------------------------------------------

    def idempotency_key(self) -> str | None:
        raw = self.headers.get(b"idempotency-key")
        if raw is None:
            return None
        if not _IDEMPOTENCY_KEY.match(raw):
            raise errors.invalid_request(
                "Idempotency-Key must be 1-255 printable ASCII characters.", code="invalid_value",
                param="Idempotency-Key",
            )
        return raw.decode("ascii")

    # -- cancelling the work when the client goes away ---------------------------------------------

    def watch_disconnect(self) -> None:
        """From now on (the body is read), a client disconnect cancels this request's task.

        The watcher (a task waiting on ``receive``) starts only once the request has run for
        :data:`_WATCH_AFTER_SECONDS`: most requests finish sooner, and a timer costs far less than
        a task per request. Work that outlives it (a generation, a long stream) is still cancelled
        within that delay of the client leaving.
        """
        task = asyncio.current_task()
        if task is None:
            return
        self._watch_timer = asyncio.get_running_loop().call_later(_WATCH_AFTER_SECONDS, self._start_watching, task)

    def _start_watching(self, task: asyncio.Task[Any]) -> None:
        self._watch_timer = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch(task))

    async def _watch(self, task: asyncio.Task[Any]) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
        if self._watcher is not None:  # still watching: the response is not complete
            self.disconnected = True
            task.cancel()

    def stop_watching(self) -> None:
        """The work is done (or past the point where leaving changes anything): never cancel from here on."""
        timer, self._watch_timer = self._watch_timer, None
        if timer is not None:
            timer.cancel()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()

    # -- response --------------------------------------------------------------------------------

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        headers.append((b"x-request-id", self.request_id.encode()))
        self.status = status
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body_part(self, data: bytes, *, more: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def respond(
        self, status: int, body: bytes, content_type: bytes = JSON, extra: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        self.stop_watching()
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        headers.extend(extra)
        await self.start(status, headers)
        await self.body_part(body, more=False)

    async def respond_json(self, status: int, payload: object, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
        await self.respond(status, orjson.dumps(payload), JSON, extra)

    async def respond_error(self, error: errors.GatewayError) -> None:
        self.error_type = error.type
        await self.respond(error.status, error.body_bytes(), JSON, error_headers(error))

    async def respond_replay(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        self.replayed = True
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        if not any(name == b"content-type" for name, _ in raw):
            raw.append((b"content-type", JSON))
        raw = [(n, v) for n, v in raw if n not in (b"content-length", b"x-request-id")]
        raw.append(_REPLAY_HEADER)
        raw.append((b"content-length", str(len(body)).encode()))
        self.stop_watching()
        await self.start(status, raw)
        await self.body_part(body, more=False)
