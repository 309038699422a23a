"""A client that goes away stops the upstream call (stream and non-stream) and is charged for what it got.

The upstream here is a real local aiohttp server that streams slowly and
records when the gateway's connection to it closes: a real engine cannot be
asked when it noticed a disconnect. The embedded llama.cpp engine shows it by
serving the next request in line at once.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, ObservingUpstream, new_tenant


def _open(gateway: GatewayProcess, key: str, body: dict[str, object],
          headers: dict[str, str] | None = None) -> http.client.HTTPConnection:
    parts = urlsplit(gateway.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                **(headers or {})})
    return connection


def _wait_closed(upstream: ObservingUpstream, tag: str, timeout: float = 5.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tag in upstream.closed:
            return upstream.closed[tag]
        time.sleep(0.02)
    raise AssertionError(f"the upstream call {tag!r} was not stopped")


def test_stream_disconnect_stops_the_upstream_and_charges_what_was_delivered(
    slow_gateway: tuple[GatewayProcess, ObservingUpstream],
) -> None:
    gateway, upstream = slow_gateway
    tenant = new_tenant(gateway, credits_cents=100)
    before = tenant.balance()["balance_cents"]
    connection = _open(gateway, tenant.key, {"model": "slow", "stream": True, "max_tokens": 1000,
                                            "messages": [{"role": "user", "content": "stream-1"}]})
    response = connection.getresponse()
    assert response.status == 200
    received = b""
    while received.count(b"\n\n") < 5:
        received += response.read1(65536)
    left_at = time.monotonic()
    connection.sock.close()  # type: ignore[union-attr]
    connection.close()
    closed_at = _wait_closed(upstream, "stream-1")
    assert closed_at - left_at < 2.0
    sent = upstream.chunks_sent["stream-1"]
    assert sent < 100  # it stopped long before the 600 chunks it would have sent
    deadline = time.monotonic() + 5
    while tenant.balance()["held_cents"] and time.monotonic() < deadline:
        time.sleep(0.05)
    balance = tenant.balance()
    assert balance["held_cents"] == 0
    spent_microcents = round((before - balance["balance_cents"]) * 1_000_000)
    # 1 cent per 1k tokens = 1000 micro-cents per token: prompt estimate + one token per delivered delta.
    assert spent_microcents > 0
    assert spent_microcents % 1000 == 0
    output_tokens_charged_max = sent
    assert spent_microcents <= (output_tokens_charged_max + 200) * 1000


def test_non_stream_disconnect_cancels_the_upstream_and_charges_nothing(
    slow_gateway: tuple[GatewayProcess, ObservingUpstream],
) -> None:
    gateway, upstream = slow_gateway
    tenant = new_tenant(gateway, credits_cents=100)
    before = tenant.balance()
    connection = _open(gateway, tenant.key, {"model": "slow", "max_tokens": 10,
                                            "messages": [{"role": "user", "content": "plain-1"}]})
    time.sleep(0.5)
    assert "plain-1" not in upstream.closed  # the upstream is still working on it
    left_at = time.monotonic()
    connection.sock.close()  # type: ignore[union-attr]
    connection.close()
    closed_at = _wait_closed(upstream, "plain-1")
    assert closed_at - left_at < 2.0
    deadline = time.monotonic() + 5
    while tenant.balance()["held_cents"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tenant.balance() == before


def test_idempotent_stream_in_flight_is_409_and_a_dropped_one_is_not_rerun(
    slow_gateway: tuple[GatewayProcess, ObservingUpstream],
) -> None:
    gateway, upstream = slow_gateway
    tenant = new_tenant(gateway, credits_cents=100)
    body: dict[str, object] = {"model": "slow", "stream": True, "max_tokens": 1000,
                               "messages": [{"role": "user", "content": "keyed-stream"}]}
    headers = {"Idempotency-Key": "keyed-stream-1"}
    connection = _open(gateway, tenant.key, body, headers)
    response = connection.getresponse()
    assert response.status == 200
    received = b""
    while received.count(b"\n\n") < 3:
        received += response.read1(65536)
    second = _open(gateway, tenant.key, body, headers).getresponse()
    assert second.status == 409
    assert json.loads(second.read())["error"]["type"] == "idempotency_key_in_use"
    connection.sock.close()  # type: ignore[union-attr]
    connection.close()
    _wait_closed(upstream, "keyed-stream")
    deadline = time.monotonic() + 5
    while tenant.balance()["held_cents"] and time.monotonic() < deadline:
        time.sleep(0.05)
    charged = tenant.balance()
    assert charged["held_cents"] == 0
    assert charged["balance_cents"] < 100  # what it delivered was charged
    del upstream.closed["keyed-stream"]
    third = _open(gateway, tenant.key, body, headers).getresponse()
    assert third.status == 409
    assert json.loads(third.read())["error"]["type"] == "idempotency_replay_unavailable"
    assert "keyed-stream" not in upstream.closed  # never sent upstream again
    assert tenant.balance() == charged


def test_an_embedded_engine_refuses_past_its_queue_and_is_freed_by_a_client_that_leaves(tmp_path: Path) -> None:
    # One llama.cpp worker and a queue of one, over real sockets: a third request is a 503 with Retry-After,
    # and the worker stops the generation of a client that hangs up, so the queued request runs at once.
    gateway = GatewayProcess(tmp_path, admin_token=ADMIN_TOKEN, config={"deployments": [
        {"id": "smollm2", "backend": "embedded", "engine": "llama_cpp", "operations": ["chat.completions"],
         "workers": 1, "queue_size": 1}]}).start(timeout=120)
    try:
        tenant = new_tenant(gateway, credits_cents=100)
        short = {"model": "smollm2", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
        story = _open(gateway, tenant.key, {"model": "smollm2", "max_tokens": 1500, "temperature": 0,
                                            "messages": [{"role": "user", "content": "Write a very long story."}]})
        time.sleep(1.0)  # the only worker is generating the story
        queued: dict[str, Any] = {}

        def wait_in_the_queue() -> None:
            queued["response"] = tenant.post("/chat/completions", short)
            queued["answered_at"] = time.monotonic()

        waiter = threading.Thread(target=wait_in_the_queue)
        waiter.start()
        time.sleep(0.5)  # the queue of one is full
        refused = tenant.post("/chat/completions", short)
        assert refused.status == 503, refused.body
        assert refused.error["type"] == "deployment_error"
        assert int(refused.headers["retry-after"]) >= 1
        left_at = time.monotonic()
        story.sock.close()  # type: ignore[union-attr]
        story.close()
        waiter.join(120)
        assert queued["response"].status == 200, queued["response"].body
        assert queued["answered_at"] - left_at < 5
    finally:
        gateway.stop()
