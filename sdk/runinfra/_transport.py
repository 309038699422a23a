"""The default transport: ``http.client`` keep-alive connections, pooled per origin.

* One pool of idle connections per origin, shared by threads (atomic list pops and appends),
  each request written in one ``sendall`` and its response parsed by ``http.client``.
* One ``SSLContext`` per trust configuration per process (building one reads the whole
  system trust store; doing it per request is what makes naive clients slow).
* ``HTTP(S)_PROXY``/``NO_PROXY`` honoured; https goes through a CONNECT tunnel.
* Redirects are never followed (``http.client`` does not); the client turns 3xx into an error.
* A body that ends short is a ``RunInfraConnectionError``, never a silent end.
* After ``fork()`` a child starts with empty pools instead of sharing its parent's sockets.

``http.client`` and ``ssl`` are imported on the first request, which keeps ``import
runinfra`` and client construction cheap.
"""

from __future__ import annotations

import _thread
import _weakref
import io
import os
from time import monotonic

from ._errors import RunInfraConnectionError, map_transport_errors, permanent, redact_headers
from ._proxy import Proxy, ProxySettings, proxy_settings_from_env
from ._wire import RunInfraRequest, RunInfraResponse

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["HTTPTransport", "shared_ssl_context"]

_READ_SIZE = 65536
# A response body is held in memory whole; past this a hostile or broken server is refused
# instead of exhausting memory (the largest real bodies, long WAV files, are far smaller).
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
_INLINE_BODY_LIMIT = 1 << 16  # larger bodies go in a second sendall instead of being copied
# A pooled connection idle longer than this is probed for a close from the server before
# reuse. Servers close idle keep-alive connections after seconds (uvicorn 5 s, nginx 75 s);
# one that closes sooner without "Connection: close" is caught by the probe after 0.1 s.
_PROBE_AFTER_IDLE_SECONDS = 0.1
_MAX_IDLE_PER_ORIGIN = 32

_ssl_contexts: Dict[Tuple[Optional[str], Optional[str]], Any] = {}
_ssl_lock = _thread.allocate_lock()


def shared_ssl_context() -> Any:
    """The process-wide default ``SSLContext`` for the current ``SSL_CERT_FILE``/``SSL_CERT_DIR``."""
    key = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
    context = _ssl_contexts.get(key)
    if context is None:
        with _ssl_lock:
            context = _ssl_contexts.get(key)
            if context is None:
                import ssl

                context = ssl.create_default_context()
                _ssl_contexts[key] = context
    return context


class _Origin:
    """Where and how to connect for one ``scheme://host:port``."""

    __slots__ = ("authority", "host", "idle", "port", "proxy", "scheme", "url_prefix")

    def __init__(self, scheme: str, host: str, port: int, proxy: Optional[Proxy], url_prefix: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.proxy = proxy
        self.url_prefix = url_prefix  # an absolute-form request target prefix for plain-http proxies
        bracketed = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        self.authority = bracketed if port == default_port else f"{bracketed}:{port}"
        self.idle: List[_Connection] = []


class _KeptReader(io.BufferedReader):
    """The connection's one buffered reader; ``http.client`` closes "its" file after every
    response, so ``close`` is a no-op here and ``release`` really closes it."""

    def close(self) -> None:
        return None

    def release(self) -> None:
        super().close()


class _Connection:
    """One socket, its reader, and the current timeout. Responses are parsed by
    ``http.client.HTTPResponse``; requests are written in one ``sendall`` (headers and body
    together: one syscall and no delayed-ACK stall)."""

    __slots__ = ("idle_since", "reader", "sock", "timeout")

    def __init__(self, sock: Any, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self.reader = _KeptReader(socket_io(sock))
        self.idle_since = 0.0

    def makefile(self, mode: str) -> _KeptReader:  # what HTTPResponse(sock) calls
        return self.reader

    def close(self) -> None:
        try:
            self.reader.release()
        finally:
            self.sock.close()


def socket_io(sock: Any) -> Any:
    import socket

    return socket.SocketIO(sock, "rb")


def _split_origin(prefix: str) -> Tuple[str, str, int]:
    scheme, _, authority = prefix.partition("://")
    scheme = scheme.lower()
    if scheme not in ("http", "https") or not authority:
        raise RunInfraConnectionError(f"unsupported URL scheme {scheme!r}")
    if authority.startswith("["):
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    return scheme, host, port


class HTTPTransport:
    """A callable transport with persistent connections; thread-safe; ``close()`` when done."""

    def __init__(
        self,
        *,
        proxies: Optional[ProxySettings] = None,
        max_idle_per_origin: int = _MAX_IDLE_PER_ORIGIN,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self._proxies = proxy_settings_from_env() if proxies is None else proxies
        self._max_response_bytes = max_response_bytes
        self._max_idle = max_idle_per_origin
        self._origins: Dict[str, _Origin] = {}
        self._lock = _thread.allocate_lock()
        self._closed = False
        self.connections_opened = 0  # observable by tests and benchmarks
        _track_for_fork(self)

    # --- pool -----------------------------------------------------------------------------

    def _origin(self, prefix: str) -> _Origin:
        origin = self._origins.get(prefix)
        if origin is None:
            scheme, host, port = _split_origin(prefix)
            proxy = self._proxies.proxy_for(scheme, host, port)
            origin = _Origin(scheme, host, port, proxy, prefix)
            with self._lock:
                origin = self._origins.setdefault(prefix, origin)
        return origin

    # The idle lists need no lock: list.pop() and list.append() are atomic in CPython, and a
    # lock here is what made threads sharing a client slower than each using its own socket.

    def _checkout(self, origin: _Origin, timeout: float) -> _Connection:
        if self._closed:
            raise permanent(RunInfraConnectionError("the client is closed"))
        idle = origin.idle
        while True:
            try:
                connection = idle.pop()
            except IndexError:
                return self._connect(origin, timeout)
            # Probing costs a syscall (and a GIL hand-off under threads): only a connection
            # idle long enough for a server to have closed it is probed.
            if monotonic() - connection.idle_since < _PROBE_AFTER_IDLE_SECONDS or not _dropped(connection):
                if connection.timeout != timeout:
                    connection.sock.settimeout(timeout)
                    connection.timeout = timeout
                return connection
            connection.close()

    def _checkin(self, origin: _Origin, connection: _Connection, response: Any) -> None:
        if response.will_close or len(origin.idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = monotonic()
        origin.idle.append(connection)
        if self._closed:  # closed before or during this check-in: close() may have missed it
            self._close_idle()

    def _connect(self, origin: _Origin, timeout: float) -> _Connection:
        import socket

        proxy = origin.proxy
        address = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
        sock = socket.create_connection(address, timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if origin.scheme == "https":
                if proxy is not None:
                    _open_tunnel(sock, origin, proxy)
                sock = shared_ssl_context().wrap_socket(sock, server_hostname=origin.host)
        except BaseException:
            sock.close()
            raise
        self.connections_opened += 1
        return _Connection(sock, timeout)

    def close(self) -> None:
        """Close every idle connection; requests after this raise ``RunInfraConnectionError``."""
        self._closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        with self._lock:
            origins = list(self._origins.values())
        for origin in origins:
            while True:
                try:
                    connection = origin.idle.pop()
                except IndexError:
                    break
                connection.close()

    def __del__(self) -> None:
        # A client dropped without close() still releases its sockets.
        try:  # noqa: SIM105 - contextlib would cost import time for one finalizer
            self.close()
        except Exception:  # noqa: S110 - nothing can be reported from a finalizer
            pass

    def reset_after_fork(self) -> None:
        """Forget the parent's sockets (closing them would disturb the parent's streams)."""
        self._lock = _thread.allocate_lock()
        for origin in self._origins.values():
            origin.idle = []

    # --- one request ----------------------------------------------------------------------

    def __call__(self, request: RunInfraRequest) -> RunInfraResponse:
        url = request.url
        path_start = url.find("/", url.find("://") + 3)
        if path_start < 0:
            prefix, path = url, "/"
        else:
            prefix, path = url[:path_start], url[path_start:]
        origin = self._origins.get(prefix) or self._origin(prefix)
        headers = request.headers
        authorization = headers.get("Authorization")
        secret = authorization[7:] if authorization and authorization.startswith("Bearer ") else None
        target = path
        lines = []
        if origin.proxy is not None and origin.scheme == "http":
            target = prefix + path  # absolute-form: the proxy forwards it
            if origin.proxy.authorization:
                lines.append(f"Proxy-Authorization: {origin.proxy.authorization}\r\n")
        method = request.method
        body = request.body
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        fields = "".join(lines)
        if "\n" in fields.replace("\r\n", "") or "\r" in fields.replace("\r\n", "") or " " in target:
            raise RunInfraConnectionError("refusing to send a header or target containing a line break")
        head = f"{method} {target} HTTP/1.1\r\nHost: {origin.authority}\r\nAccept-Encoding: identity\r\n{fields}\r\n"
        data = head.encode("latin-1")
        timeout = request.timeout_seconds
        import http.client

        with map_transport_errors(secret):
            connection = self._checkout(origin, timeout)
        try:
            with map_transport_errors(secret):
                if body and len(body) > _INLINE_BODY_LIMIT:
                    connection.sock.sendall(data)
                    connection.sock.sendall(body)
                else:
                    connection.sock.sendall(data + body if body else data)
                response = http.client.HTTPResponse(connection, method=method)  # type: ignore[arg-type]
                response.begin()
        except BaseException:
            connection.close()
            raise
        message = response.msg
        raw_headers = getattr(message, "_headers", None)
        if raw_headers is None:  # pragma: no cover - every CPython keeps parsed headers there
            raw_headers = message.items()
        response_headers = redact_headers({name.lower(): value for name, value in raw_headers}, secret)
        request_id = response_headers.get("x-request-id")
        if request.stream and 200 <= response.status < 300:
            stream_body = _StreamBody(self, origin, connection, response, request_id, secret)
            return RunInfraResponse(response.status, response_headers, stream_body)
        try:
            with map_transport_errors(secret, request_id):
                content = _read_body(response, request_id, self._max_response_bytes)
        except BaseException:
            connection.close()
            raise
        self._checkin(origin, connection, response)
        return RunInfraResponse(response.status, response_headers, content)


def _read_body(response: Any, request_id: Optional[str], limit: int) -> bytes:
    """The whole body, refusing one larger than ``limit`` bytes."""
    length = response.length
    if length is not None:
        if length > limit:
            raise permanent(
                RunInfraConnectionError(
                    f"the response declares {length} bytes, over the {limit}-byte limit", request_id=request_id
                )
            )
        return response.read()  # type: ignore[no-any-return]
    parts = []
    size = 0
    while True:
        part = response.read1(_READ_SIZE)
        if not part:
            break
        size += len(part)
        if size > limit:
            raise permanent(
                RunInfraConnectionError(f"the response is over the {limit}-byte limit", request_id=request_id)
            )
        parts.append(part)
    response.read()  # consume the end of the message (trailers) so the connection is reusable
    return b"".join(parts)


def _open_tunnel(sock: Any, origin: _Origin, proxy: Proxy) -> None:
    """``CONNECT host:port`` through an http proxy; the TLS handshake then runs inside it."""
    import http.client

    lines = [f"CONNECT {origin.host if ':' not in origin.host else '[' + origin.host + ']'}:{origin.port} HTTP/1.1",
             f"Host: {origin.authority}"]  # fmt: skip
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    response = http.client.HTTPResponse(sock, method="CONNECT")
    response.begin()
    if response.status != 200:
        raise RunInfraConnectionError(f"the proxy refused the tunnel with HTTP {response.status}")
    response.fp.close()  # the reader only held the proxy's answer; the socket stays open


def _dropped(connection: _Connection) -> bool:
    """Whether an idle connection was closed by the server (readable while idle = EOF or junk)."""
    sock = connection.sock
    import select

    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _StreamBody:
    """A streamed response body: iterate for byte chunks as they arrive; ``close()`` to stop."""

    __slots__ = ("_connection", "_done", "_origin", "_request_id", "_response", "_secret", "_transport")

    def __init__(
        self,
        transport: HTTPTransport,
        origin: _Origin,
        connection: _Connection,
        response: Any,
        request_id: Optional[str],
        secret: Optional[str],
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._response = response
        self._request_id = request_id
        self._secret = secret
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        read1 = response.read1
        try:
            with map_transport_errors(self._secret, self._request_id):
                while True:
                    chunk = read1(_READ_SIZE)
                    if not chunk:
                        break
                    yield chunk
                if response.length:  # Content-Length promised more than arrived
                    raise RunInfraConnectionError(
                        "the response stream ended before its declared length", request_id=self._request_id
                    )
                response.read()  # consume the end of the message so the connection is reusable
        except BaseException:
            self.close()
            raise
        if not self._done:
            self._done = True
            self._transport._checkin(self._origin, self._connection, response)

    def close(self) -> None:
        """Stop reading; an unfinished body closes its connection (it cannot be reused)."""
        if self._done:
            return
        self._done = True
        self._response.close()
        self._connection.close()

    def __del__(self) -> None:
        # A stream dropped unread (never iterated, never closed) still releases its socket.
        try:  # noqa: SIM105 - contextlib would cost import time for one finalizer
            self.close()
        except Exception:  # noqa: S110 - nothing can be reported from a finalizer
            pass


_live_transports: List[Any] = []


def _track_for_fork(transport: HTTPTransport) -> None:
    if len(_live_transports) > 64:
        _live_transports[:] = [ref for ref in _live_transports if ref() is not None]
    _live_transports.append(_weakref.ref(transport))


def _reset_pools_after_fork() -> None:
    for ref in _live_transports:
        transport = ref()
        if transport is not None:
            transport.reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pools_after_fork)
