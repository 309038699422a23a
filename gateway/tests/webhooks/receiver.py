"""A real HTTP receiver on 127.0.0.1 that records every delivery and misbehaves on request.

The path picks the behaviour, so one server plays every kind of endpoint:
``/ok``; ``/fail-then-ok/N`` (N times 500, then 200); ``/always/STATUS``;
``/slow/S`` (sleeps S seconds each time); ``/slow-first/S`` (only the first
time); ``/retry-after/S`` (429 with ``Retry-After: S`` once, then 200);
``/gone`` (410); ``/redirect`` (302 to ``/ok``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["RawReceiver", "Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """One threaded HTTP server; ``received`` lists every POST, in arrival order."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._per_path: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", "0")), 1_000_000)
                body = self.rfile.read(length)
                receiver._serve(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def _serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        with self._lock:
            headers = {k.lower(): v for k, v in handler.headers.items()}
            self.received.append(Received(path=path, headers=headers, body=body, at=time.time()))
            self._per_path[path] += 1
            seen = self._per_path[path]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, headers = self._behave(path, seen)
            try:
                handler.send_response(status)
                for name, value in headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", "2")
                handler.end_headers()
                handler.wfile.write(b"ok")
            except OSError:
                pass  # the dispatcher gave up on us (timeout) or was killed
        finally:
            with self._lock:
                self.in_flight -= 1

    def _behave(self, path: str, seen: int) -> tuple[int, dict[str, str]]:
        parts = path.strip("/").split("/")
        kind = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if kind == "ok":
            return 200, {}
        if kind == "fail-then-ok":
            return (500, {}) if seen <= int(arg) else (200, {})
        if kind == "always":
            return int(arg), {}
        if kind == "slow":
            time.sleep(float(arg))
            return 200, {}
        if kind == "slow-first":
            if seen == 1:
                time.sleep(float(arg))
            return 200, {}
        if kind == "retry-after":
            return (429, {"Retry-After": arg}) if seen == 1 else (200, {})
        if kind == "gone":
            return 410, {}
        if kind == "redirect":
            return 302, {"Location": self.url("/ok")}
        return 404, {}


class RawReceiver:
    """A TCP server that answers the n-th connection with ``replies[n]`` raw bytes (faults no real server makes).

    ``None`` closes the connection without a word; after the bytes it holds the
    connection open for ``linger`` seconds (a body that never finishes).
    """

    def __init__(self, replies: list[bytes | None], linger: float = 0.0) -> None:
        self.requests: list[bytes] = []
        self._replies = replies
        self._linger = linger
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._closed.set()
        self._socket.close()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.requests.append(b"")  # the slot exists before its thread writes to it
            threading.Thread(target=self._answer, args=(connection, len(self.requests) - 1), daemon=True).start()

    def _answer(self, connection: socket.socket, index: int) -> None:
        with connection:
            connection.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
            self.requests[index] = data
            reply = self._replies[min(index, len(self._replies) - 1)]
            if reply is None:
                return
            with contextlib.suppress(OSError):
                connection.sendall(reply)
                time.sleep(self._linger)
