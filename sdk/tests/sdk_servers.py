"""Real local servers the SDK tests script: an HTTP(S) server that can misbehave on demand,
a CONNECT/forwarding proxy, and a throwaway certificate authority made with ``openssl``.

Every server binds 127.0.0.1 on port 0 and runs in daemon threads; tests talk to them over
real sockets. Responses are written as raw bytes so a test can send anything: malformed
frames, stalls, short bodies, truncated chunked encodings, dropped connections.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

Handler = Callable[["Exchange"], None]

# The key every test client uses; tests check it never leaks into errors, reprs or logs.
API_KEY = "sk-test-Secret-0123456789abcdef"


class Request:
    """One request the server received."""

    def __init__(
        self, method: str, target: str, headers: Dict[str, str], body: bytes, connection_id: int
    ) -> None:
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.body = body
        self.connection_id = connection_id
        self.header_names: List[str] = []  # every header line's name, repeats included

    def json(self) -> Any:
        return json.loads(self.body)


class Exchange:
    """The handler's view of one request: read ``request``, then write a response."""

    def __init__(self, server: ScriptedServer, sock: socket.socket, request: Request) -> None:
        self.server = server
        self.sock = sock
        self.request = request
        self.keep_open = True

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def respond(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: Optional[Dict[str, str]] = None,
        *,
        content_type: Optional[str] = "application/json",
        request_id: Optional[str] = "req_test",
    ) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if request_id:
            lines.append(f"x-request-id: {request_id}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def respond_json(self, obj: Any, status: int = 200, headers: Optional[Dict[str, str]] = None, **kw: Any) -> None:
        self.respond(status, json.dumps(obj).encode(), headers, **kw)

    def start_chunked(
        self, status: int = 200, content_type: str = "text/event-stream", headers: Optional[Dict[str, str]] = None
    ) -> None:
        lines = [f"HTTP/1.1 {status} OK", f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
        lines.append("x-request-id: req_stream")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self) -> None:
        self.sock.sendall(b"0\r\n\r\n")

    def drop(self) -> None:
        """Close the connection now, without a response or after a partial one."""
        self.keep_open = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


def json_handler(obj: Any, status: int = 200, headers: Optional[Dict[str, str]] = None, **kw: Any) -> Handler:
    def handle(exchange: Exchange) -> None:
        exchange.respond_json(obj, status, headers, **kw)

    return handle


def error_handler(
    status: int, error: Dict[str, Any], headers: Optional[Dict[str, str]] = None, request_id: str = "req_err"
) -> Handler:
    return json_handler({"error": error}, status, headers, request_id=request_id)


def sse_handler(frames: bytes, *, pieces: int = 1, headers: Optional[Dict[str, str]] = None) -> Handler:
    """A chunked event stream, split into ``pieces`` chunks at arbitrary byte offsets."""

    def handle(exchange: Exchange) -> None:
        exchange.start_chunked(headers=headers)
        size = max(1, len(frames) // pieces)
        for start in range(0, len(frames), size):
            exchange.chunk(frames[start : start + size])
        exchange.end_chunks()

    return handle


def sse_frames(events: List[Dict[str, Any]], done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events)
    return out + (b"data: [DONE]\n\n" if done else b"")


class ScriptedServer:
    """An HTTP/1.1 server with keep-alive whose responses tests script per route."""

    def __init__(self, tls: Optional[ssl.SSLContext] = None, host_name: str = "127.0.0.1") -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._tls = tls
        self.host_name = host_name
        self.routes: Dict[Tuple[str, str], List[Handler]] = {}
        self.requests: List[Request] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def origin(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.host_name}:{self.port}"

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    def on(self, method: str, path: str, *handlers: Handler) -> None:
        """Answer ``method path`` with ``handlers`` in turn; the last one repeats."""
        self.routes[(method, path)] = list(handlers)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                connection_id = self.connections
                self._sockets.append(sock)
            threading.Thread(target=self._serve, args=(sock, connection_id), daemon=True).start()

    def _serve(self, sock: socket.socket, connection_id: int) -> None:
        try:
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True)
            reader = sock.makefile("rb")
            while True:
                request = _read_request(reader, connection_id)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    handlers = self.routes.get((request.method, request.path))
                    handler = None
                    if handlers:
                        handler = handlers.pop(0) if len(handlers) > 1 else handlers[0]
                exchange = Exchange(self, sock, request)
                if handler is None:
                    exchange.respond_json(
                        {"error": {"message": "no route", "type": "not_found_error"}}, 404, request_id="req_404"
                    )
                else:
                    handler(exchange)
                if not exchange.keep_open:
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.005)


def _read_request(reader: Any, connection_id: int) -> Optional[Request]:
    line = reader.readline(65537)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: Dict[str, str] = {}
    names: List[str] = []
    while True:
        header = reader.readline(65537).decode("latin-1").rstrip("\r\n")
        if not header:
            break
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
        names.append(name.strip().lower())
    length = int(headers.get("content-length", "0"))
    body = reader.read(length) if length else b""
    request = Request(method, target, headers, body, connection_id)
    request.header_names = names
    return request


class Proxy:
    """A forwarding HTTP proxy that also tunnels CONNECT; records what it was asked."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.seen: List[Tuple[str, str, Optional[str]]] = []  # (method, target, proxy-authorization)
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        upstream: Optional[socket.socket] = None
        try:
            request = _read_request(reader, 0)
            if request is None:
                return
            self.seen.append((request.method, request.target, request.headers.get("proxy-authorization")))
            if request.method == "CONNECT":
                host, _, port = request.target.rpartition(":")
                upstream = socket.create_connection((host, int(port)))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _pipe(client, upstream)
                return
            # absolute-form: forward this request (and later ones on the connection) upstream
            rest = request.target.split("://", 1)[1]
            authority, _, path = rest.partition("/")
            host, _, port = authority.rpartition(":")
            upstream = socket.create_connection((host, int(port)))
            head = [f"{request.method} /{path} HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in request.headers.items() if k != "proxy-authorization"]
            upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + request.body)
            _pipe_one_way(upstream, client)
        except OSError:
            return
        finally:
            reader.close()
            client.close()
            if upstream is not None:
                upstream.close()

    def close(self) -> None:
        self._listener.close()


def _pipe_one_way(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                return
            sink.sendall(data)
    except OSError:
        return


def _pipe(a: socket.socket, b: socket.socket) -> None:
    thread = threading.Thread(target=_pipe_one_way, args=(b, a), daemon=True)
    thread.start()
    with contextlib.suppress(OSError):
        _pipe_one_way(a, b)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_RDWR)
    thread.join(5)


def make_certificate_authority(directory: Path) -> Tuple[Path, Path, Path]:
    """A local CA and a server certificate for localhost/127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "ext.cnf"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2", "-subj", "/CN=runinfra test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")  # fmt: skip
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca_cert, cert, key
