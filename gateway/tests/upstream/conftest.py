"""Fixtures: small misbehaving local servers (the real llama.cpp server is ``llama`` in gateway/tests/conftest.py).

The misbehaving servers are real aiohttp servers on 127.0.0.1 port 0; each test
gives the handlers that provoke the fault it needs (a malformed frame, a cut
stream, a stall) because a real engine cannot produce those on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from runinfra_gateway.testing import free_port

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


@pytest.fixture
def dead_url() -> str:
    """A base URL nothing listens on: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


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
