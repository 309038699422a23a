"""What the HTTP layer alone costs per request, back to back and right after an idle wait.

Three servers answer the same small JSON to ``GET /v1/models`` over keep-alive loopback TCP, each in a
process of its own on uvloop, and one client times the round trip:

* ``bare``: an ``asyncio.Protocol`` that writes a fixed answer for every request head (no parser, no
  ASGI): the floor any Python server on this machine pays;
* ``uvicorn``: uvicorn's httptools protocol (the one the gateway's ``GatewayHttpProtocol`` extends)
  serving a three-line ASGI app;
* ``httptools``: the same ASGI app behind a minimal httptools protocol (parse callbacks, one task per
  request, the head and body in one write): roughly the least an ASGI server can do per request.

The idle waits stand for an engine's work: every request the gateway serves after an engine call runs
with caches and predictors that the wait left cold. The ``uvicorn`` minus ``httptools`` difference is
what a leaner HTTP layer than uvicorn's could save the gateway per request (``bench/embedded/run.py``
prints what the whole gateway adds; ``bench/image_path.py`` the ASGI app's own part).

    .venv/bin/python bench/http_floor.py [--requests 300] [--idle-ms 0,5,20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

ANSWER = b'{"object":"list","data":[]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER)),
           (b"x-request-id", b"req_0123456789abcdef")]
REQUEST = b"GET /v1/models HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer rik_bench\r\n\r\n"


async def _app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


async def _listen(protocol: Callable[[], asyncio.Protocol], ports: Any) -> None:
    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0)
    ports.put(server.sockets[0].getsockname()[1])
    await server.serve_forever()


def _serve_bare(ports: Any) -> None:
    import uvloop

    head = b"HTTP/1.1 200 OK\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in HEADERS) + b"\r\n"

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport, self.pending = cast(asyncio.Transport, transport), b""

        def data_received(self, data: bytes) -> None:
            self.pending += data
            while b"\r\n\r\n" in self.pending:
                _, self.pending = self.pending.split(b"\r\n\r\n", 1)
                self.transport.write(head + ANSWER)

    uvloop.run(_listen(Bare, ports))


def _serve_uvicorn(ports: Any) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ports.put(sock.getsockname()[1])
    config = uvicorn.Config(_app, loop="uvloop", http="httptools", lifespan="off", access_log=False,
                            log_level="warning", proxy_headers=False, server_header=False, date_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def _serve_httptools(ports: Any) -> None:
    import httptools
    import uvloop

    class Minimal(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            self.parser = httptools.HttpRequestParser(self)
            self.loop = asyncio.get_running_loop()

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_begin(self) -> None:
            self.url, self.headers, self.body = b"", [], b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

        def on_body(self, body: bytes) -> None:
            self.body += body

        def on_message_complete(self) -> None:
            url = httptools.parse_url(self.url)
            scope = {"type": "http", "http_version": "1.1", "method": self.parser.get_method().decode(),
                     "path": url.path.decode(), "raw_path": url.path, "query_string": url.query or b"",
                     "headers": self.headers}
            self.loop.create_task(self.cycle(scope, self.body))

        async def cycle(self, scope: dict[str, Any], body: bytes) -> None:
            head: list[bytes] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    head.append(b"HTTP/1.1 %d OK\r\n" % message["status"])
                    head.extend(name + b": " + value + b"\r\n" for name, value in message["headers"])
                    head.append(b"\r\n")
                else:
                    self.transport.write(b"".join(head) + message["body"])

            await _app(scope, receive, send)

    uvloop.run(_listen(Minimal, ports))


def _round_trips(port: int, idle_ms: float, requests: int) -> float:
    """Median milliseconds of a request on one keep-alive connection, each after ``idle_ms`` of sleep."""
    client = socket.create_connection(("127.0.0.1", port))
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    try:
        for index in range(requests + 20):  # the first 20 warm the connection up
            time.sleep(idle_ms / 1000.0)
            started = time.perf_counter()
            client.sendall(REQUEST)
            received = b""
            while not received.endswith(ANSWER):
                received += client.recv(65536)
            if index >= 20:
                times.append((time.perf_counter() - started) * 1000.0)
    finally:
        client.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per server and wait (default 300)")
    parser.add_argument("--idle-ms", default="0,5,20", help="idle waits before each request, ms (default 0,5,20)")
    args = parser.parse_args()
    waits = [float(wait) for wait in args.idle_ms.split(",")]
    spawn = multiprocessing.get_context("spawn")
    servers = {}
    for name, serve in (("bare", _serve_bare), ("uvicorn", _serve_uvicorn), ("httptools", _serve_httptools)):
        ports: Any = spawn.Queue()
        process = spawn.Process(target=serve, args=(ports,), daemon=True)
        process.start()
        servers[name] = (ports.get(timeout=60), process)
    try:
        print(f"GET /v1/models round trip, median ms of {args.requests} on one keep-alive connection each")
        print(f"{'idle before each':>18}{'bare':>10}{'uvicorn':>10}{'httptools':>11}{'uvicorn - httptools':>21}")
        for wait in waits:
            # Servers in turn, twice over, so a drift of the machine's load shows as a disagreement.
            for _ in range(2):
                medians = {name: _round_trips(port, wait, args.requests) for name, (port, _) in servers.items()}
                saved = medians["uvicorn"] - medians["httptools"]
                print(f"{wait:>15g} ms{medians['bare']:>10.3f}{medians['uvicorn']:>10.3f}{medians['httptools']:>11.3f}"
                      f"{saved:>21.3f}", flush=True)
    finally:
        for _, process in servers.values():
            process.kill()


if __name__ == "__main__":
    main()
