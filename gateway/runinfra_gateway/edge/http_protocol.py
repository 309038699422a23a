"""uvicorn's httptools protocol, with limits on the request head and the gateway's envelope on its own refusals.

Some answers leave before the ASGI app sees a request, so the app cannot give
them an ``x-request-id`` or a JSON error body: uvicorn's 400 for a request that
does not parse as HTTP/1.1, and, for a request head that never ends, nothing at
all. httptools and uvicorn keep every byte of the request line and headers, so
one client sending an endless header grows the process (measured: 196 MB of one
header accepted in 40 s, +77 MB resident, never answered); and uvicorn has no
timer between a connection's first byte and its last header, so a client that
sends a byte now and then (or connects and sends nothing) holds a connection
forever; likewise a body that stops arriving. Here the head is capped at
:data:`MAX_HEAD_BYTES` (431 past it) and must arrive within
``head_timeout_seconds`` of the connection or of its first byte (408; a connection
that sends nothing at all is closed without an answer), and a body
may not pause for longer than ``body_timeout_seconds`` between reads (408; the app
waiting for it sees the client leave and marks the request with
:data:`BODY_TIMED_OUT`). Every refusal carries a request id and
``{"error": {...}}`` like any other response, and the connection is then closed.
Timers are armed only for heads and bodies that span reads, never for a request
that arrives in one.

A response's status line and headers wait for its first body write (or the end
of the event loop's current pass, for a stream whose first event is not ready)
and leave with it in one ``writev``. uvicorn writes them separately; on
loopback the first write wakes the client, which then sleeps again for the body
(measured: a median 0.33 ms between the two writes of a one-at-a-time image
request, as the woken client took the CPU the gateway needed to write the body).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from runinfra_gateway import errors
from runinfra_gateway.edge.request_id import new_request_id

__all__ = ["BODY_TIMED_OUT", "MAX_HEAD_BYTES", "GatewayHttpProtocol"]

#: Request line plus headers. nginx allows 4 x 8 KiB by default and Node.js 16 KiB; 64 KiB leaves room for
#: large cookies or tokens while bounding what one connection can make the gateway hold.
MAX_HEAD_BYTES = 64 * 1024
#: Set (True) in the request's ASGI scope when its body stopped arriving and the protocol answered 408.
BODY_TIMED_OUT = "runinfra.body_timed_out"


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools then stops and uvicorn calls ``send_400_response``."""


class _HeadWithBody:
    """One response cycle's view of the transport: its first write (the head) is held for the next one."""

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._first = True
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.writelines((held, data))
        elif self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._flush()
        self._transport.close()


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` plus the head limits; :meth:`configured` makes the class for uvicorn."""

    head_timeout_seconds: ClassVar[float] = 30.0
    body_timeout_seconds: ClassVar[float] = 30.0

    @classmethod
    def configured(cls, *, head_timeout_seconds: float, body_timeout_seconds: float) -> type[GatewayHttpProtocol]:
        """This protocol with its settings, for ``uvicorn.Config(http=...)`` (uvicorn instantiates the class)."""
        settings = {"head_timeout_seconds": head_timeout_seconds, "body_timeout_seconds": body_timeout_seconds}
        return type(cls.__name__, (cls,), settings)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            # Bytes read while a head is incomplete. The chunk's tail may already be body, so this only
            # bounds what an endless head makes us hold (the cap plus one read, at most 256 KiB); a head
            # that completes is measured exactly in on_headers_complete.
            self._head_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if not self._awaiting_head:  # headers read, body not finished: it may pause this long
            self._cancel_body_timer()
            self._body_timer = self.loop.call_later(self.body_timeout_seconds, self._body_timed_out)
        elif self._head_bytes:
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(errors.request_headers_too_large(MAX_HEAD_BYTES))
            elif self._head_timer is None:  # a head begun but not finished: it has the timeout to finish
                self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()
        # Request line and header lines as sent, give or take the method and version.
        size = len(self.url) + sum([len(name) + len(value) + 4 for name, value in self.headers])
        if size > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # None or an older cycle when the request upgrades
            cycle.transport = _HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()
        self._awaiting_head = True  # a pipelined request's head may follow
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._refuse(errors.request_headers_too_large(MAX_HEAD_BYTES))
        else:
            self._refuse(errors.invalid_request("The request is not valid HTTP/1.1.", code="invalid_http_request"))

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        timer, self._head_timer = self._head_timer, None
        if timer is not None:
            timer.cancel()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if not self._head_bytes:
            # Nothing was sent: there is no request to answer, and an unasked-for 408 could be read as the
            # answer to a request the client sends later on this connection. Close quietly (as nginx does).
            self.transport.close()
        else:
            self._refuse(errors.request_timeout(
                f"The request line and headers did not arrive within {self.head_timeout_seconds:g} s."
            ))

    def _cancel_body_timer(self) -> None:
        timer, self._body_timer = self._body_timer, None
        if timer is not None:
            timer.cancel()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self._awaiting_head or self.transport.is_closing():
            return
        if self.cycle.response_started:  # answered without reading the body (a 401, say): just close
            self.transport.close()
            return
        # Closing makes uvicorn tell the app waiting in receive() that the client left; the flag says why.
        self.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        self._refuse(errors.request_timeout(f"The request body stopped arriving for {self.body_timeout_seconds:g} s."))

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
