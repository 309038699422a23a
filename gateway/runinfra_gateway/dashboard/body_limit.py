"""Bound what a dashboard request may upload: its forms are a few short fields, never files.

A declared ``Content-Length`` over the limit is answered 413 before the body is
read; a chunked body is counted as it arrives and cut off at the limit, so no
request can make the gateway buffer megabytes of form data.
"""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_DASHBOARD_BODY_BYTES", "BodyLimit"]

MAX_DASHBOARD_BODY_BYTES = 256 * 1024


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_DASHBOARD_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._refuse(scope, receive, send)
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = PlainTextResponse(
            f"Request body larger than {self.max_bytes // 1024} KiB.", status_code=413, headers={"connection": "close"}
        )
        await response(scope, receive, send)
