"""Fixtures for the gateway-core tests: a real llama.cpp upstream and a real ``runinfra serve``.

One llama.cpp server and one gateway serve the whole session; each test makes
its own workspace and keys through the admin API, so tests do not share
balances or rate-limit buckets. Tests that restart or kill the gateway start
their own.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import http.client
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import numpy as np
import pytest
from aiohttp import web
from runinfra_gateway.engines.png import encode_png
from runinfra_gateway.testing import GatewayProcess, LlamaServer

ADMIN_TOKEN = "ria_test_" + secrets.token_urlsafe(24)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        payload = self.json()
        assert isinstance(payload, dict), payload
        assert isinstance(payload.get("error"), dict), payload
        error: dict[str, Any] = payload["error"]
        return error


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: bytes | dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    timeout: float = 60.0,
) -> Response:
    """One HTTP exchange on a fresh connection (http.client: nothing between the test and the socket)."""
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent_headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        sent_headers.setdefault("Content-Type", "application/json")
    if key is not None:
        sent_headers["Authorization"] = f"Bearer {key}"
    try:
        connection.request(method, parts.path.rstrip("/") + path, body=body, headers=sent_headers)
        response = connection.getresponse()
        data = response.read()
        header_list = [(k.lower(), v) for k, v in response.getheaders()]
        return Response(response.status, dict(header_list), data, header_list)
    finally:
        connection.close()


@dataclass
class Tenant:
    """A workspace of one test, with a workspace-scoped key."""

    gateway: GatewayProcess
    workspace_id: str
    key: str
    key_id: str

    def post(self, path: str, body: dict[str, Any] | bytes, **kwargs: Any) -> Response:
        kwargs.setdefault("key", self.key)
        return request(self.gateway.v1, "POST", path, body=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Response:
        kwargs.setdefault("key", self.key)
        return request(self.gateway.v1, "GET", path, **kwargs)

    def balance(self) -> dict[str, Any]:
        result: dict[str, Any] = admin(self.gateway, "GET", f"/workspaces/{self.workspace_id}/credits").json()
        return result


def admin(gateway: GatewayProcess, method: str, path: str, body: dict[str, Any] | None = None,
          *, token: str = ADMIN_TOKEN) -> Response:
    return request(gateway.base_url + "/admin/v1", method, path, body=body, key=token)


def new_tenant(gateway: GatewayProcess, credits_cents: float = 100.0, **key_options: Any) -> Tenant:
    workspace = admin(gateway, "POST", "/workspaces", {"name": "test", "credits_cents": credits_cents})
    assert workspace.status == 201, workspace.body
    workspace_id = workspace.json()["id"]
    created = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": workspace_id, **key_options})
    assert created.status == 201, created.body
    return Tenant(gateway, workspace_id, created.json()["secret"], created.json()["id"])


def chat_config(llama: LlamaServer, *, extra_deployments: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A config fronting the llama.cpp server: chat + responses, priced, with a dead deployment beside it."""
    return {
        "server": {"shutdown_grace_seconds": 10},
        "workspaces": [{"id": "main", "name": "Main", "credits_cents": 1000}],
        "deployments": [
            {
                "id": "smollm2",
                "backend": "upstream",
                "base_url": llama.base_url,
                "operations": ["chat.completions", "responses"],
                "params": ["temperature", "top_p", "max_tokens", "stop", "seed", "user", "metadata"],
                "timeout_seconds": 60,
                "prices": {"input_per_1k_tokens": 0.1, "output_per_1k_tokens": 0.2},
            },
            *(extra_deployments or []),
        ],
    }


class LocalEngine(abc.ABC):
    """A real local OpenAI-style engine (aiohttp) on an event loop of its own thread; subclasses give routes.

    ``start()`` serves them on a free port and sets ``base_url`` (ending in ``/v1``); ``stop()`` ends both.
    """

    #: Cancel a handler when its client disconnects (an engine that notices the gateway leaving).
    handler_cancellation = False

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    @abc.abstractmethod
    def routes(self) -> list[web.RouteDef]:
        """The engine's routes (``/v1/...``)."""

    def start(self) -> Self:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

        async def setup() -> str:
            app = web.Application()
            app.add_routes(self.routes())
            self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=self.handler_cancellation)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            return f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

        self.base_url = asyncio.run_coroutine_threadsafe(setup(), self.loop).result(10)
        return self

    def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


class ObservingUpstream(LocalEngine):
    """A real local engine that behaves on cue: it streams a chunk every 50 ms until the client leaves, makes a
    non-stream call wait until :meth:`release` (or answers at once when the prompt starts with "fast"), answers
    the verification probe after ``probe_delay`` seconds, records which calls started and when each call's
    connection closed, and answers image requests with :attr:`image_b64`. A real engine cannot be asked when it
    noticed a disconnect, told to stay busy for exactly as long as a test needs, or made to send broken base64."""

    handler_cancellation = True

    def __init__(self) -> None:
        self.closed: dict[str, float] = {}
        self.started: set[str] = set()
        self._released: asyncio.Event | None = None
        self.chunks_sent: dict[str, int] = {}
        self.probe_delay = 0.0
        #: What ``/v1/images/generations`` answers as each image's ``b64_json`` (a test may make it malformed).
        self.image_b64 = base64.b64encode(encode_png(np.full((4, 4), 200, dtype=np.uint8))).decode("ascii")
        super().__init__()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = body["messages"][-1]["content"]
        if content == "Say OK.":  # the verification probe
            await asyncio.sleep(self.probe_delay)
            return web.json_response({
                "id": "probe", "object": "chat.completion", "created": 1, "model": "slow",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "OK"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            })
        tag = content
        self.started.add(tag)
        if self._released is None:
            self._released = asyncio.Event()
        if not body.get("stream") and not content.startswith("fast") and not self._released.is_set():
            try:
                await asyncio.wait_for(self._released.wait(), 30)
            finally:
                if not self._released.is_set():
                    self.closed[tag] = time.monotonic()  # cancelled: the gateway dropped the call
        if not body.get("stream"):
            return web.json_response({
                "id": "fast", "object": "chat.completion", "created": 1, "model": "slow",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "x" * 200},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 50, "total_tokens": 53},
            })
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            self.chunks_sent[tag] = 0
            for index in range(600):
                chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "slow",
                         "choices": [{"index": 0, "delta": {"content": f"w{index} "}, "finish_reason": None}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.chunks_sent[tag] += 1
                await asyncio.sleep(0.05)
            return response
        finally:
            self.closed[tag] = time.monotonic()

    async def _images(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return web.json_response({"created": 7, "data": [{"b64_json": self.image_b64}] * int(body.get("n", 1))})

    async def _models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "slow", "object": "model"}]})

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat), web.post("/v1/images/generations", self._images),
                web.get("/v1/models", self._models)]

    def release(self) -> None:
        """Let every held (and every later) non-stream call answer."""

        def set_released() -> None:
            if self._released is None:
                self._released = asyncio.Event()
            self._released.set()

        self.loop.call_soon_threadsafe(set_released)



@pytest.fixture(scope="session")
def gateway(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    dead = {
        "id": "dead-upstream",
        "backend": "upstream",
        "base_url": "http://127.0.0.1:9/v1",
        "operations": ["chat.completions"],
        "timeout_seconds": 2,
    }
    process = GatewayProcess(
        Path(tmp_path_factory.mktemp("gateway")), config=chat_config(llama, extra_deployments=[dead]),
        admin_token=ADMIN_TOKEN,
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def slow_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, ObservingUpstream]]:
    """A gateway in front of an :class:`ObservingUpstream` (1 cent per 1k tokens either way), one per module."""
    upstream = ObservingUpstream().start()
    gateway = GatewayProcess(Path(tmp_path_factory.mktemp("slow")), admin_token=ADMIN_TOKEN, config={
        "deployments": [{
            "id": "slow", "backend": "upstream", "base_url": upstream.base_url,
            "operations": ["chat.completions"], "params": ["max_tokens"],
            "prices": {"input_per_1k_tokens": 1, "output_per_1k_tokens": 1},
        }],
    }).start()
    yield gateway, upstream
    gateway.stop()
    upstream.stop()


@pytest.fixture
def tenant(gateway: GatewayProcess) -> Tenant:
    return new_tenant(gateway)
