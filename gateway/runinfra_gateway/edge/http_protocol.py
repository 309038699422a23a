"""uvicorn's httptools protocol, with a cap on the request head and the gateway's envelope on its own refusals.

Two answers leave before the ASGI app sees a request, so the app cannot give
them an ``x-request-id`` or a JSON error body: uvicorn's 400 for a request that
does not parse as HTTP/1.1, and, for a request head that never ends, nothing at
all. httptools and uvicorn keep every byte of the request line and headers, so
one client sending an endless header grows the process (measured: 196 MB of one
header accepted in 40 s, +77 MB resident, never answered). Here the head is capped
at :data:`MAX_HEAD_BYTES` (431 past it), and both refusals carry a request id and
``{"error": {...}}`` like every other response; the connection is then closed.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runinfra_gateway import errors
from runinfra_gateway.edge.request_id import new_request_id

__all__ = ["MAX_HEAD_BYTES", "GatewayHttpProtocol"]

#: Request line plus headers. nginx allows 4 x 8 KiB by default and Node.js 16 KiB; 64 KiB leaves room for
#: large cookies or tokens while bounding what one connection can make the gateway hold.
MAX_HEAD_BYTES = 64 * 1024


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools then stops and uvicorn calls ``send_400_response``."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` plus the head cap; passed to ``uvicorn.Config(http=...)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_too_large = False

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            # Bytes read while a head is incomplete. The chunk's tail may already be body, so this only
            # bounds what an endless head makes us hold (the cap plus one read, at most 256 KiB); a head
            # that completes is measured exactly in on_headers_complete.
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._refuse(_head_too_large())

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        # Request line and header lines as sent, give or take the method and version.
        size = len(self.url) + sum([len(name) + len(value) + 4 for name, value in self.headers])
        if size > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head = True  # a pipelined request's head may follow
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(_head_too_large())
        else:
            self._refuse(errors.invalid_request("The request is not valid HTTP/1.1.", code="invalid_http_request"))

    def _refuse(self, error: errors.GatewayError) -> None:
        body = error.body_bytes()
        head = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n".encode("ascii")]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nx-request-id: %s\r\nconnection: close\r\n\r\n"
            % (len(body), new_request_id().encode("ascii"))
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def _head_too_large() -> errors.GatewayError:
    return errors.GatewayError(
        431,
        "invalid_request_error",
        f"The request line and headers are over {MAX_HEAD_BYTES // 1024} KiB.",
        code="request_headers_too_large",
    )
