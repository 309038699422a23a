"""A small HTTP/1.1 client for the upstream hot path: pooled keep-alive connections, httptools parsing.

A general client (aiohttp) spends much of a proxied request's CPU on things an
upstream call never needs: cookie jars, tracing hooks, redirect handling,
multidict headers, per-request timer objects. This one writes a request in one
``transport.write``, parses the answer with ``httptools`` (the parser uvicorn
uses) and hands the body over in the pieces the socket delivered. It speaks to
one kind of peer, an inference engine, so it does only that: ``GET`` or
``POST`` with a bytes body, keep-alive, chunked or sized or close-delimited
bodies, TLS when the URL says https.

Failures are three exception types the backend maps onto the error table:
:class:`ConnectFailed` (nothing reached the engine), :class:`ConnectionLost`
(with ``before_response``: whether any byte of the answer had arrived) and
:class:`ProtocolError` (not HTTP). Closing a response that is not finished
closes its connection, so the engine sees the client go.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from dataclasses import dataclass
from typing import AsyncIterator, Callable, cast
from urllib.parse import urlsplit

import httptools

__all__ = ["BodyTooLarge", "ConnectFailed", "ConnectionLost", "Endpoint", "HttpClient", "ProtocolError", "Response"]

_PAUSE_ABOVE = 1024 * 1024  # buffered body bytes before the socket stops being read


class ConnectFailed(Exception):
    """The TCP (or TLS) connection could not be made; nothing reached the engine."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ConnectionLost(Exception):
    """The connection closed before the answer was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(Exception):
    """The peer's bytes are not a valid HTTP/1.1 response."""


class BodyTooLarge(Exception):
    """The body grew past the size the caller accepts."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests for one base URL go, with the pieces of the request head computed once."""

    scheme: str
    host: str
    port: int
    base_path: str
    host_header: bytes

    @classmethod
    def from_url(cls, base_url: str) -> Endpoint:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an http(s) URL is required")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default = (parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        host_header = host if default else f"{host}:{port}"
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"), host_header.encode("idna"))


class Response:
    """One answer: ``status`` and ``headers`` (lower-case names) once it is returned; the body as it arrives."""

    def __init__(self, connection: _Connection, on_done: Callable[[], None]) -> None:
        self._connection = connection
        self._on_done = on_done
        self.status = 0
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._headers: dict[str, str] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._keep_alive = False
        self._released = False

    # -- fed by the connection --------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _headers_done(self, status: int) -> None:
        self.status = status
        self._wake()

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, names lower-cased (decoded on first use: most calls never look)."""
        if self._headers is None:
            self._headers = {
                name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._raw_headers
            }
        return self._headers

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_ABOVE:
            self._connection.pause_reading()
        self._wake()

    def _finish(self, keep_alive: bool) -> None:
        self._complete = True
        self._keep_alive = keep_alive
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if not self._complete:
            self._error = error
        self._wake()

    # -- read by the caller -------------------------------------------------------------------

    async def _wait(self, deadline: float | None) -> None:
        """Until the connection has news; ``TimeoutError`` at ``deadline`` (loop time), if one is given."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        # A timer on the future, not asyncio.timeout: no task cancellation, and cheap on the hot path.
        timer = loop.call_at(deadline, self._time_out) if deadline is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _wait_headers(self, deadline: float | None) -> None:
        while not self.status and self._error is None:
            await self._wait(deadline)
        if not self.status and self._error is not None:
            raise self._error

    def at_eof(self) -> bool:
        return self._complete and not self._chunks

    async def read_any(self, deadline: float | None = None) -> bytes:
        """Whatever body bytes have arrived (waiting until ``deadline``, loop time); ``b""`` at the end of the body."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            await self._wait(deadline)
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        if self._buffered > _PAUSE_ABOVE:
            self._connection.resume_reading()
        self._buffered = 0
        return data

    def _time_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no data from the upstream in time"))

    async def iter_any(self, deadline: float | None = None) -> AsyncIterator[bytes]:
        while True:
            data = await self.read_any(deadline)
            if not data:
                return
            yield data

    async def read(
        self, limit: int | None = None, *, max_bytes: int | None = None, deadline: float | None = None
    ) -> bytes:
        """The body by ``deadline`` (loop time): its first ``limit`` bytes, or all of it.

        With ``max_bytes``, a longer body raises :class:`BodyTooLarge` instead of filling memory.
        """
        parts: list[bytes] = []
        size = 0
        while limit is None or size < limit:
            data = await self.read_any(deadline)
            if not data:
                break
            parts.append(data)
            size += len(data)
            if max_bytes is not None and size > max_bytes:
                raise BodyTooLarge(f"the response body is larger than {max_bytes} bytes")
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    def release(self) -> None:
        """Done with it: a finished, keep-alive connection goes back to the pool; anything else is closed."""
        if self._released:
            return
        self._released = True
        if self._complete and self._keep_alive and not self._chunks:
            self._connection.reuse()
        else:
            self._connection.close()
        self._on_done()

    def close(self) -> None:
        """Drop the connection (the engine sees the disconnect)."""
        if not self._released:
            self._released = True
            self._connection.close()
            self._on_done()


class _Connection(asyncio.Protocol):
    def __init__(self, client: HttpClient, key: tuple[str, str, int]) -> None:
        self._client = client
        self.key = key
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self._got_bytes = False
        self.used = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport (what `runinfra serve` runs on) is not an asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self.response is None:  # bytes nobody asked for: the peer is confused
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.response._fail(ProtocolError(f"invalid HTTP response ({type(exc).__name__})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._client._forget(self)
        response = self.response
        if response is None or response._complete:
            return
        if response.status and self._close_delimited():
            response._finish(keep_alive=False)  # a body without length ends when the connection does
            return
        response._fail(ConnectionLost(
            "the upstream connection closed before the response was complete",
            before_response=not self._got_bytes,
        ))

    def _close_delimited(self) -> bool:
        headers = self.response.headers if self.response is not None else {}
        return "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "").lower()


    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response._headers_done(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response._feed(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.response._finish(self._parser.should_keep_alive())

    # used by the client and the response
    def start(self, request: bytes, on_done: Callable[[], None]) -> Response:
        assert self.transport is not None
        self.used = True
        self._got_bytes = False
        self.response = Response(self, on_done)
        self.transport.write(request)
        return self.response

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def reuse(self) -> None:
        self.response = None
        self._parser = httptools.HttpResponseParser(self)
        self._client._put_idle(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._client._forget(self)
            if self.transport is not None:
                self.transport.close()


class HttpClient:
    """Keep-alive connections per endpoint, at most ``max_connections`` requests in flight."""

    def __init__(
        self, *, max_connections: int, connect_timeout: float, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context

    async def request(
        self,
        method: bytes,
        endpoint: Endpoint,
        path: str,
        headers: bytes,
        body: bytes | None = None,
        *,
        deadline: float | None = None,
    ) -> Response:
        """Send one request for ``path`` (from the host root) and return once the response head has arrived.

        ``headers`` is the pre-encoded ``Name: value\\r\\n`` block (Host and Content-Length are added here).
        The caller reads the body and then calls ``release()`` or ``close()`` on the response.
        ``TimeoutError`` when the head has not arrived by ``deadline`` (loop time).
        """
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (method, path.encode("ascii"), endpoint.host_header, headers)
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        request = head + b"\r\n" + (body or b"")
        if self._slots.locked() and deadline is not None:
            # Every connection is busy: wait for one, but not past the caller's deadline.
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        # The slot is held until the caller releases or closes the response (or the request fails here).
        on_done = self._slots.release
        try:
            connection = self._take_idle(endpoint)
            if connection is not None:
                response = connection.start(request, on_done)
                try:
                    await response._wait_headers(deadline)
                    return response
                except ConnectionLost as exc:
                    if not exc.before_response:
                        raise
                    # A kept-alive connection the engine had already closed: send again on a fresh one.
                except BaseException:
                    connection.close()
                    raise
            connection = await self._connect(endpoint, deadline)
            response = connection.start(request, on_done)
            try:
                await response._wait_headers(deadline)
            except BaseException:
                connection.close()
                raise
            return response
        except BaseException:
            self._slots.release()
            raise

    def _take_idle(self, endpoint: Endpoint) -> _Connection | None:
        idle = self._idle.get((endpoint.scheme, endpoint.host, endpoint.port))
        while idle:
            connection = idle.pop()
            if not connection.closed and connection.transport is not None and not connection.transport.is_closing():
                return connection
        return None

    async def _connect(self, endpoint: Endpoint, deadline: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        connect_timeout = self._connect_timeout
        if deadline is not None and deadline - loop.time() < connect_timeout:
            connect_timeout = max(0.0, deadline - loop.time())
            if connect_timeout == 0:
                raise TimeoutError
        key = (endpoint.scheme, endpoint.host, endpoint.port)
        context: ssl.SSLContext | None = None
        if endpoint.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, key), endpoint.host, endpoint.port, ssl=context,
                    server_hostname=endpoint.host if context is not None else None,
                )
        except TimeoutError:
            if connect_timeout < self._connect_timeout:
                raise  # the caller's deadline, not the connect timeout
            raise ConnectFailed("connect timeout", timed_out=True) from None
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            raise ConnectFailed(f"TLS handshake failed ({reason})") from None
        except ConnectionRefusedError:
            raise ConnectFailed("connection refused") from None
        except OSError as exc:
            raise ConnectFailed(f"connection failed ({type(exc).__name__})") from None
        self._open.add(protocol)
        return protocol

    def _put_idle(self, connection: _Connection) -> None:
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self._max_idle:
            connection.close()
            return
        idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)

    async def aclose(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
