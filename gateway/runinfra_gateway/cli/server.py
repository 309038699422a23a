"""Running the gateway under uvicorn (uvloop + httptools), on a socket bound before start.

Binding first means ``--port 0`` works (tests, benchmarks): the real port is
known before the app starts, so absolute URLs and the "serving on" line are
right. SIGTERM/SIGINT stop accepting, let in-flight requests and streams
finish (up to ``shutdown_grace_seconds``), then flush the ledger and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

import uvicorn

from runinfra_gateway.app import create_app
from runinfra_gateway.edge import GatewayHttpProtocol
from runinfra_gateway.settings import Settings

__all__ = ["bind", "run_server"]

_SWITCH_INTERVAL_SECONDS = 0.0005


class _Server(uvicorn.Server):
    """uvicorn's server, ending with exit status 0 after a graceful stop.

    uvicorn re-raises SIGTERM once it has shut down, so the process dies "by
    signal" (status 143) even though every request was drained and the ledger
    flushed; an operator's supervisor should see a clean exit instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(settings: Settings, *, out: TextIO | None = None) -> int:
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(f"runinfra: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    settings = dataclasses.replace(settings, port=sock.getsockname()[1])
    # The event loop shares the GIL with the database thread and the engines' worker threads. With
    # CPython's default 5 ms switch interval, a request that becomes ready while another thread runs
    # Python waits up to 5 ms; 0.5 ms bounds that wait (measured: c=64 p99 -5 ms, ~+15 % requests/s,
    # and the embedded engines' time to first token through the gateway closer to in-process).
    sys.setswitchinterval(_SWITCH_INTERVAL_SECONDS)
    app = create_app(settings, out=out)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        # uvicorn's httptools protocol with a cap on the request head and timeouts (edge/http_protocol.py)
        http=GatewayHttpProtocol.configured(
            head_timeout_seconds=settings.request_head_timeout_seconds,
            body_timeout_seconds=settings.request_body_timeout_seconds,
        ),
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,  # the dashboard alone applies them (see app._dashboard)
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
        timeout_keep_alive=30,
        backlog=2048,
    )
    server = _Server(config)
    server.run(sockets=[sock])
    return 0 if server.started else 1
