"""The upstream backend in front of a real engine: llama.cpp's OpenAI server running SmolLM2-135M."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import pytest
from runinfra_gateway.backends.upstream import UpstreamBackend
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.shaping import ChatStreamShaper, ResponsesStreamAdapter, chat_to_response, responses_to_chat
from runinfra_gateway.testing import LlamaServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """The real engine is slow: these run once, on uvloop, the loop `runinfra serve` uses."""
    return ("asyncio", {"use_uvloop": True})

HELLO = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8,
         "temperature": 0}


@pytest.fixture
async def engine(llama: LlamaServer, dead_url: str) -> AsyncIterator[UpstreamBackend]:
    # A dead replica listed first: every test here also exercises failover to the live one.
    backend = UpstreamBackend.from_config("smollm2", {
        "base_urls": [dead_url, llama.base_url], "model": "smollm2-upstream", "load_balancing": "round_robin",
        "health_check_interval_seconds": 0.5,
    })
    yield backend
    await backend.aclose()


async def test_chat_completion(engine: UpstreamBackend) -> None:
    completion = await engine.chat(HELLO)
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "smollm2-upstream"  # the upstream name was sent
    message = completion["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert isinstance(message["content"], str)
    assert message["content"]
    assert completion["usage"]["completion_tokens"] >= 1
    assert completion["usage"]["prompt_tokens"] > 1


async def test_stream_shaped_for_a_client(engine: UpstreamBackend) -> None:
    shaper = ChatStreamShaper(include_usage=True)
    raw = b""
    async for chunk in engine.chat_stream({**HELLO, "stream": True}):
        raw += shaper.feed(chunk)
    raw += shaper.finish()
    frames = raw.split(b"\n\n")[:-1]
    assert frames[-1] == b"data: [DONE]"
    events = [orjson.loads(frame.removeprefix(b"data: ")) for frame in frames[:-1]]
    choice_events = [e for e in events if e["choices"]]
    reasons = [e["choices"][0]["finish_reason"] for e in choice_events]
    assert reasons[-1] in ("stop", "length")
    assert all(r is None for r in reasons[:-1])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in choice_events)
    assert text
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["completion_tokens"] >= 1
    assert shaper.usage == events[-1]["usage"]


async def test_responses_round_trip_cut_by_max_output_tokens(engine: UpstreamBackend) -> None:
    request = {"model": "smollm2", "input": "Tell me a long story.", "instructions": "You are verbose.",
               "max_output_tokens": 3}
    response = chat_to_response(await engine.chat(responses_to_chat(request)), request)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output_text"] == response["output"][0]["content"][0]["text"] != ""
    assert response["usage"]["output_tokens"] == 3


async def test_responses_stream(engine: UpstreamBackend) -> None:
    request = {"model": "smollm2", "input": "Say hi.", "max_output_tokens": 4, "stream": True}
    adapter = ResponsesStreamAdapter(request)
    raw = adapter.start()
    async for chunk in engine.chat_stream(responses_to_chat(request)):
        raw += adapter.feed(chunk)
    raw += adapter.finish()
    events = [orjson.loads(frame.split(b"\ndata: ", 1)[1]) for frame in raw.split(b"\n\n")[:-1]]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas
    assert events[-1]["response"]["output_text"] == deltas
    assert events[-1]["response"]["usage"]["output_tokens"] >= 1


async def test_verify_probes_chat_and_responses(engine: UpstreamBackend) -> None:
    results = await engine.verify(["chat.completions", "responses"])
    assert [(r.operation, r.ok) for r in results] == [("chat.completions", True), ("responses", True)]
    assert all(r.latency_ms > 0 for r in results)


async def test_closing_the_stream_stops_the_engine(engine: UpstreamBackend) -> None:
    # End-of-text is banned, so the engine would generate all 1,000 tokens (tens of seconds here);
    # llama.cpp's server runs one generation at a time, so the next answer comes quickly only if the
    # abandoned generation really stopped when the gateway closed the connection.
    # (A non-stream generation cannot be stopped inside llama-cpp-python's server: it runs to the end in
    # a thread. That the gateway drops the connection of a cancelled call is tested in test_upstream_faults.)
    long = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
            "max_tokens": 1000, "temperature": 0.8, "logit_bias": {"0": -100, "1": -100, "2": -100}}
    stream = engine.chat_stream(long)
    for _ in range(3):
        await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    started = time.perf_counter()
    await engine.chat({**HELLO, "max_tokens": 1})
    assert time.perf_counter() - started < 8


async def test_engine_rejecting_a_request_is_a_typed_error(engine: UpstreamBackend) -> None:
    with pytest.raises(GatewayError) as caught:
        await engine.chat({"model": "smollm2", "messages": "not a list"})
    # llama-cpp-python answers its own validation failures with 500, which is the engine failing: 502.
    assert (caught.value.status, caught.value.type) == (502, "deployment_error")
    assert "messages" in caught.value.message
