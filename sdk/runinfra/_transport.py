"""The default transport: ``http.client`` keep-alive connections, pooled per origin.

* One pool per origin, guarded by a lock, so threads sharing a client reuse connections.
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
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._errors import RunInfraConnectionError, map_transport_errors
from ._proxy import Proxy, ProxySettings, proxy_settings_from_env
from ._wire import RunInfraRequest, RunInfraResponse

__all__ = ["HTTPTransport", "shared_ssl_context"]

_READ_SIZE = 65536
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

    __slots__ = ("host", "idle", "port", "proxy", "scheme", "url_prefix")

    def __init__(self, scheme: str, host: str, port: int, proxy: Optional[Proxy], url_prefix: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.proxy = proxy
        self.url_prefix = url_prefix  # an absolute-form request target prefix for plain-http proxies
        self.idle: List[Any] = []


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

    def __init__(self, *, proxies: Optional[ProxySettings] = None, max_idle_per_origin: int = _MAX_IDLE_PER_ORIGIN):
        self._proxies = proxy_settings_from_env() if proxies is None else proxies
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

    def _checkout(self, origin: _Origin) -> Any:
        if self._closed:
            raise RunInfraConnectionError("the client is closed")
        idle = origin.idle
        while idle:
            with self._lock:
                connection = idle.pop() if idle else None
            if connection is None:
                break
            if not _dropped(connection):
                return connection
            connection.close()
        return self._connect(origin)

    def _checkin(self, origin: _Origin, connection: Any, response: Any) -> None:
        if response.will_close or connection.sock is None or self._closed:
            connection.close()
            return
        with self._lock:
            if len(origin.idle) < self._max_idle:
                origin.idle.append(connection)
                return
        connection.close()

    def _connect(self, origin: _Origin) -> Any:
        import http.client

        proxy = origin.proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (origin.host, origin.port)
        connection: Any
        if origin.scheme == "https":
            connection = http.client.HTTPSConnection(host, port, context=shared_ssl_context())
            if proxy is not None:
                tunnel_headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                connection.set_tunnel(origin.host, origin.port, headers=tunnel_headers)
        else:
            connection = http.client.HTTPConnection(host, port)
        connection.runinfra_timeout = None
        self.connections_opened += 1
        return connection

    def close(self) -> None:
        """Close every idle connection; requests after this raise ``RunInfraConnectionError``."""
        with self._lock:
            self._closed = True
            idle = [connection for origin in self._origins.values() for connection in origin.idle]
            for origin in self._origins.values():
                origin.idle = []
        for connection in idle:
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
        if origin.proxy is not None and origin.scheme == "http":
            target = prefix + path  # absolute-form: the proxy forwards it
            if origin.proxy.authorization:
                headers = {**headers, "Proxy-Authorization": origin.proxy.authorization}
        connection = self._checkout(origin)
        timeout = request.timeout_seconds
        try:
            with map_transport_errors(secret):
                if connection.runinfra_timeout != timeout:
                    connection.timeout = timeout
                    if connection.sock is not None:
                        connection.sock.settimeout(timeout)
                    connection.runinfra_timeout = timeout
                connection.request(request.method, target, request.body, headers)
                response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        message = response.msg
        raw_headers = getattr(message, "_headers", None)
        if raw_headers is None:  # pragma: no cover - every CPython keeps parsed headers there
            raw_headers = message.items()
        response_headers = {name.lower(): value for name, value in raw_headers}
        request_id = response_headers.get("x-request-id")
        if request.stream and 200 <= response.status < 300:
            body = _StreamBody(self, origin, connection, response, request_id, secret)
            return RunInfraResponse(response.status, response_headers, body)
        try:
            with map_transport_errors(secret, request_id):
                data = response.read()
        except BaseException:
            connection.close()
            raise
        self._checkin(origin, connection, response)
        return RunInfraResponse(response.status, response_headers, data)


def _dropped(connection: Any) -> bool:
    """Whether an idle connection was closed by the server (readable while idle = EOF or junk)."""
    sock = connection.sock
    if sock is None:
        return True
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
        connection: Any,
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
