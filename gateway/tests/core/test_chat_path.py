"""Chat and Responses through a real llama.cpp upstream: envelopes, SSE framing, usage, exact charges."""

from __future__ import annotations

import json
from typing import Any

from runinfra_gateway.testing import GatewayProcess

from .conftest import Tenant, admin, request

MESSAGES = [{"role": "user", "content": "Count: one, two, three"}]


def _events(body: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, checking the framing on the way."""
    assert body.endswith(b"\n\n")
    payloads = []
    for frame in body.decode().split("\n\n")[:-1]:
        data = [line[6:] for line in frame.split("\n") if line.startswith("data: ")]
        assert len(data) == 1, frame
        payloads.append(data[0])
    return payloads


def _charged(tenant: Tenant, response_cost: int, before: dict[str, Any]) -> None:
    after = tenant.balance()
    assert after["held_cents"] == 0
    spent_microcents = round((before["balance_cents"] - after["balance_cents"]) * 1_000_000)
    assert spent_microcents == response_cost


def test_chat_non_stream_envelope_and_exact_charge(tenant: Tenant) -> None:
    before = tenant.balance()
    response = tenant.post("/chat/completions", {"model": "smollm2", "messages": MESSAGES, "max_tokens": 8})
    assert response.status == 200, response.body
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "smollm2"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert usage["completion_tokens"] <= 8
    cost = int(response.headers["x-runinfra-cost-microcents"])
    # prices: 0.1 cent per 1k input tokens, 0.2 per 1k output -> 100 / 200 micro-cents per token
    assert cost == usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 200
    _charged(tenant, cost, before)


def test_chat_stream_with_include_usage(tenant: Tenant) -> None:
    before = tenant.balance()
    response = tenant.post("/chat/completions", {
        "model": "smollm2", "messages": MESSAGES, "max_tokens": 6, "stream": True,
        "stream_options": {"include_usage": True},
    })
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-request-id"]
    payloads = _events(response.body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] >= 1
    choice_chunks = [c for c in chunks if c["choices"]]
    finishes = [c["choices"][0].get("finish_reason") for c in choice_chunks]
    assert finishes[-1] is not None
    assert all(f is None for f in finishes[:-1])
    after = tenant.balance()
    assert after["held_cents"] == 0
    usage = usage_chunk["usage"]
    spent = round((before["balance_cents"] - after["balance_cents"]) * 1_000_000)
    assert spent == usage["prompt_tokens"] * 100 + usage["completion_tokens"] * 200


def test_chat_stream_without_include_usage_has_no_usage_chunk(tenant: Tenant) -> None:
    response = tenant.post("/chat/completions", {
        "model": "smollm2", "messages": MESSAGES, "max_tokens": 4, "stream": True,
    })
    assert response.status == 200
    chunks = [json.loads(p) for p in _events(response.body)[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c or c["usage"] is None for c in chunks)


def test_responses_non_stream_and_stream(tenant: Tenant) -> None:
    plain = tenant.post("/responses", {
        "model": "smollm2", "input": "Say hello", "instructions": "Be brief.", "max_output_tokens": 4,
    })
    assert plain.status == 200, plain.body
    body = plain.json()
    assert body["object"] == "response"
    assert body["status"] == "incomplete"  # 4 tokens cut it short
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["content"][0]["type"] == "output_text"
    assert body["output_text"] == body["output"][0]["content"][0]["text"]
    assert body["usage"]["total_tokens"] == body["usage"]["input_tokens"] + body["usage"]["output_tokens"]
    assert int(plain.headers["x-runinfra-cost-microcents"]) > 0

    streamed = tenant.post("/responses", {"model": "smollm2", "input": "Say hello", "max_output_tokens": 5,
                                          "stream": True})
    assert streamed.status == 200
    events = [json.loads(p) for p in _events(streamed.body)]
    types = [e["type"] for e in events]
    assert types[0] == "response.created"
    assert "response.output_text.delta" in types
    assert types[-1] == "response.completed"
    final = events[-1]["response"]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert final["output_text"] == deltas


def test_requests_are_logged_as_one_json_line_without_secrets(gateway: GatewayProcess, tenant: Tenant) -> None:
    response = tenant.post("/chat/completions", {"model": "smollm2", "messages": MESSAGES, "max_tokens": 2},
                           headers={"X-Client-Request-Id": "trace-log-1"})
    assert response.status == 200
    request_id = response.headers["x-request-id"]
    admin(gateway, "GET", "/requests")  # flushes the batch; the log buffer flushes every 200 ms
    import time

    deadline = time.monotonic() + 5
    line = None
    while time.monotonic() < deadline and line is None:
        for candidate in gateway.stderr().splitlines():
            if request_id in candidate:
                line = json.loads(candidate)
        time.sleep(0.1)
    assert line is not None
    assert line["client_request_id"] == "trace-log-1"
    assert line["workspace_id"] == tenant.workspace_id
    assert line["deployment"] == "smollm2"
    assert line["status"] == 200
    assert line["cost_microcents"] == int(response.headers["x-runinfra-cost-microcents"])
    assert line["usage"]["input_tokens"] > 0
    assert line["latency_ms"] > 0
    everything = gateway.stderr() + gateway.stdout()
    assert tenant.key not in everything
    metrics = request(gateway.base_url, "GET", "/metrics")
    assert b"runinfra_charged_microcents" in metrics.body
    assert tenant.key not in metrics.body.decode()
