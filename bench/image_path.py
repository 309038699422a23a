"""What the gateway's own work costs per image request, with a warm CPU and right after an idle wait.

``bench/embedded/run.py`` measures what the gateway adds to an image end to end (HTTP included): about
0.4 ms on the digits model's 7.5 ms. This bench splits that figure. It drives the gateway's ASGI app
in this process (no sockets) with the whole charged request (key, rate limit, hold, settle,
short-lived URL, access log, request log, metrics), the deployment's engine swapped for one that
answers at once with an image it drew before, so that only the gateway's work is timed:

* back to back, the CPU warm;
* right after ``--idle-ms`` of idle waiting, as every request that follows an engine's work is (the
  event loop sleeps while the engine draws), and then a second request at once: if the second is as
  fast as warm, what the first paid is the refill of what the idle wait evicted (caches, predictors),
  which every line of code after a wait pays on this machine, not work the request path does.

    .venv/bin/python bench/image_path.py [--requests 3000] [--idle-ms 7.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from runinfra_gateway.admin import service
from runinfra_gateway.app import GatewayApp, create_app
from runinfra_gateway.settings import load_settings

CONFIG = """
[limits]
requests_per_minute = 100000000
[[workspaces]]
id = "bench"
name = "bench"
credits_cents = 100000000
[[deployments]]
id = "bench-images"
backend = "embedded"
engine = "digits_diffusion"
operations = ["images.generate"]
prices = { per_image = 0.5 }
"""
BODY = json.dumps({"model": "bench-images", "prompt": "a handwritten 7", "n": 1}).encode()


def _image_request(app: GatewayApp, key: str) -> Callable[[], Awaitable[None]]:
    headers = [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode()),
               (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

    async def one() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/images/generations", "raw_path": b"/v1/images/generations",
                 "query_string": b"", "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 1)}
        delivered = False
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": BODY, "more_body": False}
            await asyncio.Event().wait()  # the client never leaves
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        assert statuses == [200], statuses

    return one


async def _medians(run: Callable[[], Awaitable[None]], requests: int, idle: float) -> tuple[float, float, float]:
    """Median seconds of ``run``: back to back; right after ``idle`` seconds of waiting; at once after that."""
    for _ in range(200):
        await run()
    warm, first, second = [], [], []
    for _ in range(requests):
        started = time.perf_counter()
        await run()
        warm.append(time.perf_counter() - started)
    for _ in range(requests // 4):
        await asyncio.sleep(idle)
        started = time.perf_counter()
        await run()
        middle = time.perf_counter()
        await run()
        first.append(middle - started)
        second.append(time.perf_counter() - middle)
    return statistics.median(warm), statistics.median(first), statistics.median(second)


async def main(requests: int, idle_ms: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="runinfra-image-path-"))
    config = folder / "gateway.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(config, overrides={"data_dir": folder / "data", "port": 1})
    app = create_app(settings, out=io.StringIO())
    with (folder / "access.log").open("w", encoding="utf-8") as log:
        with contextlib.redirect_stderr(log):
            await app.startup()  # its access log keeps the stream it starts with: a file, as in bench/embedded
        state = app.state
        assert state is not None
        try:
            while not state.ready:  # noqa: ASYNC110 (readiness is a flag the verifier sets)
                await asyncio.sleep(0.1)
            key = await service.create_key(state, {"scope": "workspace", "workspace_id": "bench", "name": "bench"})
            runtime = state.registry.get("bench-images")
            assert runtime is not None
            assert runtime.backend is not None
            images = runtime.backend.images
            drawn = await images({"prompt": "a handwritten 7", "n": 1})
            draw_ms = statistics.median([await _timed(images, {"prompt": "7", "n": 1}) for _ in range(50)])

            async def at_once(_body: Any) -> Any:
                return drawn

            runtime.backend.images = at_once  # type: ignore[method-assign]  # the gateway's work alone
            warm, first, second = await _medians(_image_request(app, key["secret"]), requests, idle_ms / 1000)
        finally:
            await app.shutdown()

    print(f"the charged image request through the ASGI app, no sockets, the engine answering at once (medians of "
          f"{requests:,} back to back, {requests // 4:,} pairs after {idle_ms:g} ms idle)")
    for label, seconds in (("warm, back to back", warm), (f"first after {idle_ms:g} ms idle", first),
                           ("second, at once after that", second)):
        print(f"  {label:30s}{seconds * 1e6:8.1f} µs  ({seconds / warm:.1f}x warm)")
    print(f"the digits model draws a default (1024x1024) image in {draw_ms:.2f} ms here: the gateway's work is "
          f"{warm * 1e3 / draw_ms:.1%} of it warm, {first * 1e3 / draw_ms:.1%} as the first thing after a wait")


async def _timed(call: Callable[[Any], Awaitable[Any]], body: Any) -> float:
    started = time.perf_counter()
    await call(body)
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests timed back to back (default 3000)")
    parser.add_argument("--idle-ms", type=float, default=7.5,
                        help="idle wait before each request of the second set (default 7.5, one image's draw)")
    arguments = parser.parse_args()
    uvloop.run(main(arguments.requests, arguments.idle_ms))
