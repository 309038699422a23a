"""The upstream backend against local servers that misbehave on purpose.

Each fault here is one a real engine cannot be made to produce on demand: a
malformed frame, a stream cut mid-way, a stall before the first byte, a
refused connection, an error status, a slow stream the client walks away from.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import orjson
import pytest
from aiohttp import web
from runinfra_gateway.backends.base import ChatChunk, TranscriptionInput
from runinfra_gateway.backends.upstream import UpstreamBackend
from runinfra_gateway.errors import GatewayError

from .conftest import StartServer
from .helpers import backend, refusal

pytestmark = pytest.mark.anyio

CHAT = {"model": "dep", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "up",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def frame(i: int, finish: str | None = None) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up",
            "choices": [{"index": 0, "delta": {"content": f"t{i}"}, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


USAGE_FRAME = b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,' \
              b'"completion_tokens":2,"total_tokens":5}}\n\n'


async def sse_response(request: web.Request, body: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(body)
    await response.write_eof()
    return response


async def collect(stream: Any) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


async def drain_into(stream: Any, got: list[ChatChunk]) -> None:
    async for chunk in stream:
        got.append(chunk)


async def stream_until_error(url: str) -> tuple[GatewayError, list[ChatChunk], UpstreamBackend]:
    """Stream from ``url`` until the backend raises; the error, the chunks before it, and the (closed) backend."""
    b = backend(url)
    got: list[ChatChunk] = []
    error = await refusal(b, drain_into(b.chat_stream(CHAT), got))
    return error, got, b


async def wait_for_disconnect(request: web.Request, seen: asyncio.Event, seconds: float = 10) -> None:
    """Poll until the client's connection is gone (aiohttp does not cancel handlers on disconnect)."""
    for _ in range(int(seconds / 0.01)):
        transport = request.transport
        if transport is None or transport.is_closing():
            seen.set()
            return
        await asyncio.sleep(0.01)


# -- the happy path and what is sent upstream ------------------------------------------------


async def test_request_rewrites_model_asks_for_usage_and_sends_the_key(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNINFRA_TEST_UPSTREAM_KEY", "sk-upstream-secret")
    seen: list[tuple[dict[str, Any], str | None]] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        seen.append((body, request.headers.get("Authorization")))
        if body.get("stream"):
            return await sse_response(request, frame(0) + frame(1, "stop") + USAGE_FRAME + b"data: [DONE]\n\n")
        return web.json_response(COMPLETION)

    url = await start_server({"POST /v1/chat/completions": chat})
    b = backend(url, model="upstream-name", api_key_env="RUNINFRA_TEST_UPSTREAM_KEY")
    try:
        assert (await b.chat({**CHAT, "stream_options": {"include_usage": False}}))["usage"]["total_tokens"] == 4
        chunks = await collect(b.chat_stream({**CHAT, "stream_options": {"include_usage": False}}))
    finally:
        await b.aclose()
    non_stream, stream = seen
    assert non_stream[0]["model"] == "upstream-name"
    assert non_stream[0]["stream"] is False
    assert "stream_options" not in non_stream[0]
    assert stream[0]["stream"] is True
    assert stream[0]["stream_options"] == {"include_usage": True}
    assert non_stream[1] == stream[1] == "Bearer sk-upstream-secret"
    assert [c.payload for c in chunks] == [frame(0)[6:-2], frame(1, "stop")[6:-2], USAGE_FRAME[6:-2]]
    assert getattr(chunks[-1], "more_ready", None) is False  # the last chunk of the stream ends its read
    assert "sk-upstream-secret" not in repr(b)


async def test_stream_framing_variants_are_parsed(start_server: StartServer) -> None:
    body = (
        b": keepalive\r\n\r\n"
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"},\r\ndata: "finish_reason":null}]}\r\n\r\n'
        b"event: ping\r\n\r\n"
        b'data:{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(body), 7):  # arrives in small pieces
            await response.write(body[i:i + 7])
            await asyncio.sleep(0)
        await response.write_eof()
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        chunks = await collect(b.chat_stream(CHAT))
    finally:
        await b.aclose()
    assert chunks[0].data["choices"][0]["delta"]["content"] == "a"
    assert chunks[0].payload == b'{"id":"c","choices":[{"index":0,"delta":{"content":"a"},\n"finish_reason":null}]}'
    assert chunks[1].data["usage"]["total_tokens"] == 2
    assert len(chunks) == 2


async def test_missing_usage_is_estimated_from_the_stream(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return await sse_response(request, frame(0) + frame(1) + frame(2, "stop") + b"data: [DONE]\n\n")

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        chunks = await collect(b.chat_stream(CHAT))
    finally:
        await b.aclose()
    assert len(chunks) == 4
    assert chunks[-1].data["choices"] == []
    assert chunks[-1].data["usage"]["completion_tokens"] == 3
    assert chunks[-1].data["usage"]["prompt_tokens"] > 0


# -- malformed or cut streams ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        frame(0) + b"data: {not json\n\n" + b"data: [DONE]\n\n",
        frame(0) + b"data: [1, 2]\n\n" + b"data: [DONE]\n\n",
        frame(0) + b'data: {"error": {"message": "engine exploded", "type": "server_error"}}\n\n',
        frame(0),  # ends without [DONE]
        frame(0) + b"data: " + b"a" * (9 * 1024 * 1024),  # an event that never ends
    ],
    ids=["not-json", "not-an-object", "error-event", "no-done", "oversized-event"],
)
async def test_a_bad_stream_is_a_deployment_error_after_the_good_chunks(start_server: StartServer, body: bytes) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return await sse_response(request, body)

    error, got, b = await stream_until_error(await start_server({"POST /v1/chat/completions": chat}))
    assert error.status == 502
    assert error.type == "deployment_error"
    assert [c.data["choices"][0]["delta"]["content"] for c in got] == ["t0"]
    assert getattr(got[0], "more_ready", None) is False  # a shaper sends it before the error
    assert b.replicas[0].in_flight == 0


async def test_stream_cut_mid_way_is_a_deployment_error(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(frame(0))
        await response.write(frame(1)[:20])
        assert request.transport is not None
        request.transport.close()  # the engine process died mid-answer
        return response

    error, got, _ = await stream_until_error(await start_server({"POST /v1/chat/completions": chat}))
    assert error.status == 502
    assert len(got) == 1


async def test_non_stream_malformed_json_is_a_deployment_error(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b'{"choices": [', content_type="application/json")

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    error = await refusal(b, b.chat(CHAT))
    assert (error.status, error.type) == (502, "deployment_error")


@pytest.mark.parametrize(
    ("completion", "fault"),
    [
        ({**COMPLETION, "choices": []}, "'choices' is not a non-empty list"),
        ({**COMPLETION, "choices": "ok"}, "'choices' is not a non-empty list"),
        ({**COMPLETION, "choices": ["ok"]}, "choices[0]: not an object"),
        ({**COMPLETION, "choices": [{"index": 0}]}, "choices[0]: 'message' is not an object"),
        ({**COMPLETION, "choices": [{"index": 0, "message": "ok"}]}, "choices[0]: 'message' is not an object"),
        ({**COMPLETION, "choices": [{"index": 0, "message": {"content": [1, 2]}}]}, "'message.content' is neither"),
        ({**COMPLETION, "choices": [{"index": 0, "message": {"content": 5}}]}, "'message.content' is neither"),
        ({**COMPLETION, "choices": [{"index": "0", "message": {"content": "ok"}}]}, "'index' is not an integer"),
        ({**COMPLETION, "choices": [{"message": {"content": "ok"}, "finish_reason": 1}]}, "'finish_reason' is not"),
        ({**COMPLETION, "choices": [{"message": {"role": 1, "content": "ok"}}]}, "'message.role' is not text"),
        ({**COMPLETION, "choices": [{"message": {"content": None, "tool_calls": {}}}]}, "'message.tool_calls'"),
        ({**COMPLETION, "id": [1]}, "'id' is not text"),
        ({**COMPLETION, "created": "yesterday"}, "'created' is not an integer"),
        ({**COMPLETION, "created": True}, "'created' is not an integer"),
    ],
)
async def test_a_completion_a_client_could_not_parse_is_a_deployment_error(
    start_server: StartServer, completion: dict[str, Any], fault: str
) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion)

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    error = await refusal(b, b.chat(CHAT))
    assert (error.status, error.type) == (502, "deployment_error")
    assert "answered a malformed chat completion" in error.message
    assert fault in error.message


async def test_a_completion_with_tool_calls_and_no_content_is_relayed(start_server: StartServer) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    completion = {**COMPLETION, "choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [call]},
                                             "finish_reason": "tool_calls", "logprobs": None}]}

    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion)

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        answered = await b.chat(CHAT)
    finally:
        await b.aclose()
    assert answered["choices"] == completion["choices"]


@pytest.mark.parametrize(
    ("data", "fault"),
    [
        ("x", "'data' is not a list"),
        ([{"embedding": [0.1]}], "1 embeddings for 2 inputs"),
        ([5, {"embedding": [0.1]}], "data[0] has no 'embedding' list"),
        ([{"embedding": [0.1]}, {"embedding": "x"}], "data[1] has no 'embedding' list"),
        ([{"embedding": [0.1]}, {"embedding": []}], "data[1] has no 'embedding' list"),
        ([{"embedding": [0.1]}, {"embedding": [[1.0]]}], "data[1].embedding is not a list of numbers"),
        ([{"embedding": [0.1]}, {"embedding": [0.1, "2"]}], "data[1].embedding is not a list of numbers"),
    ],
)
async def test_embeddings_a_client_could_not_use_are_a_deployment_error(
    start_server: StartServer, data: Any, fault: str
) -> None:
    async def embed(request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": data})

    b = backend(await start_server({"POST /v1/embeddings": embed}))
    error = await refusal(b, b.embeddings({"model": "dep", "input": ["one", "two"]}))
    assert (error.status, error.type) == (502, "deployment_error")
    assert f"answered malformed embeddings: {fault}." in error.message


@pytest.mark.parametrize(
    ("answer", "fault"),
    [
        ({"text": 5}, "'text' is not text"),
        ({"text": "hi", "language": ["en"]}, "'language' is not text"),
        ({"text": "hi", "segments": "0-1 hi"}, "'segments' is not a list"),
        ({"text": "hi", "segments": ["hi"]}, "segments[0] has no 'text'"),
        ({"text": "hi", "segments": [{"start": 0, "end": 1}]}, "segments[0] has no 'text'"),
        ({"text": "hi", "segments": [{"start": 0, "end": 1, "text": "hi"}, {"start": "0", "end": 1, "text": "x"}]},
         "segments[1] has no numeric 'start' and 'end'"),
        ({"text": "hi", "segments": [{"start": 0, "end": True, "text": "hi"}]},
         "segments[0] has no numeric 'start' and 'end'"),
    ],
)
async def test_a_transcription_a_client_could_not_read_is_a_deployment_error(
    start_server: StartServer, answer: dict[str, Any], fault: str
) -> None:
    async def transcriptions(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.json_response(answer)

    b = backend(await start_server({"POST /v1/audio/transcriptions": transcriptions}))
    upload = TranscriptionInput(b"RIFF", "a.wav", "audio/wav", {"response_format": "verbose_json"},
                                b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ")
    error = await refusal(b, b.transcribe(upload))
    assert (error.status, error.type) == (502, "deployment_error")
    assert f"answered a malformed transcription: {fault}." in error.message


# -- timeouts ----------------------------------------------------------------------------------


async def test_stall_before_first_byte_times_out_with_504(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.json_response(COMPLETION)

    b = backend(await start_server({"POST /v1/chat/completions": chat}), first_byte_timeout_seconds=0.2)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
        with pytest.raises(GatewayError) as caught_stream:
            await collect(b.chat_stream(CHAT))
        assert loop.time() - started < 2
    finally:
        await b.aclose()
    assert (caught.value.status, caught.value.type) == (504, "deployment_error")
    assert caught_stream.value.status == 504


async def test_a_stream_that_goes_silent_times_out(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(frame(0))
        await asyncio.sleep(5)
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}), timeout_seconds=0.3)
    error = await refusal(b, collect(b.chat_stream(CHAT)))
    assert error.status == 504


async def test_a_body_that_stalls_after_the_head_times_out_with_504(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "500"})
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-1", ')
        await asyncio.sleep(5)
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}), timeout_seconds=0.3)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
        assert loop.time() - started < 2
    finally:
        await b.aclose()
    assert (caught.value.status, caught.value.type) == (504, "deployment_error")
    assert b.replicas[0].in_flight == 0


# -- replicas, failover and health -------------------------------------------------------------


async def test_refused_replica_fails_over_and_is_marked_down(start_server: StartServer, dead_url: str) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        if (await request.json()).get("stream"):
            return await sse_response(request, frame(0, "stop") + USAGE_FRAME + b"data: [DONE]\n\n")
        return web.json_response(COMPLETION)

    good = await start_server({"POST /v1/chat/completions": chat})
    b = backend([dead_url, good], load_balancing="round_robin")
    try:
        for _ in range(4):
            assert (await b.chat(CHAT))["choices"][0]["message"]["content"] == "ok"
            assert len(await collect(b.chat_stream(CHAT))) == 2
        dead, alive = b.replicas
        assert dead.last_error == "connection refused"
        assert dead.down_until > 0
        assert alive.last_error == ""
        assert alive.in_flight == 0
    finally:
        await b.aclose()


async def test_all_replicas_refusing_is_502_then_503_with_retry_after(dead_url: str) -> None:
    b = backend([dead_url], health_check_interval_seconds=7)
    try:
        with pytest.raises(GatewayError) as first:
            await b.chat(CHAT)
        with pytest.raises(GatewayError) as second:
            await collect(b.chat_stream(CHAT))
    finally:
        await b.aclose()
    assert (first.value.status, first.value.type) == (502, "deployment_error")
    assert second.value.status == 503
    assert 1 <= int(second.value.headers["retry-after"]) <= 7


async def test_no_failover_once_the_engine_has_answered(start_server: StartServer) -> None:
    calls = {"a": 0, "b": 0}

    def failing(name: str) -> Any:
        async def chat(request: web.Request) -> web.StreamResponse:
            calls[name] += 1
            return web.json_response({"error": {"message": "kaput", "type": "server_error"}}, status=500)
        return chat

    a = await start_server({"POST /v1/chat/completions": failing("a")})
    c = await start_server({"POST /v1/chat/completions": failing("b")})
    b = backend([a, c])
    error = await refusal(b, b.chat(CHAT))
    assert error.status == 502
    assert "kaput" in error.message
    assert calls["a"] + calls["b"] == 1


async def test_load_is_spread_over_replicas(start_server: StartServer) -> None:
    calls = {"a": 0, "b": 0}

    def counting(name: str) -> Any:
        async def chat(request: web.Request) -> web.StreamResponse:
            calls[name] += 1
            await asyncio.sleep(0.05)
            return web.json_response(COMPLETION)
        return chat

    a = await start_server({"POST /v1/chat/completions": counting("a")})
    c = await start_server({"POST /v1/chat/completions": counting("b")})
    b = backend([a, c])
    try:
        await asyncio.gather(*(b.chat(CHAT) for _ in range(10)))
        await asyncio.gather(*(b.chat(CHAT) for _ in range(2)))
    finally:
        await b.aclose()
    assert calls == {"a": 6, "b": 6}


async def chat_until_refused(b: UpstreamBackend) -> None:
    for _ in range(50):
        await b.chat(CHAT)
        await asyncio.sleep(0.02)


async def test_health_checks_mark_replicas_down_and_up(start_server: StartServer) -> None:
    healthy = {"now": False}
    hits: list[str | None] = []

    async def models(request: web.Request) -> web.StreamResponse:
        hits.append(request.headers.get("Authorization"))
        return web.json_response({"data": []}, status=200 if healthy["now"] else 503)

    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response(COMPLETION)

    url = await start_server({"GET /v1/models": models, "POST /v1/chat/completions": chat})
    b = UpstreamBackend.from_config("dep", {"base_url": url, "health_check_interval_seconds": 0.1, "api_key": "k"})
    try:
        # The first call starts the session and its health checks; the first check may lag a little.
        with pytest.raises(GatewayError):
            await chat_until_refused(b)
        assert b.replicas[0].last_error == "health check answered 503"
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
        assert caught.value.status == 503
        assert "retry-after" in caught.value.headers
        healthy["now"] = True
        for _ in range(50):
            await asyncio.sleep(0.05)
            if b.replicas[0].last_error == "":
                break
        assert (await b.chat(CHAT))["id"] == "chatcmpl-1"
    finally:
        await b.aclose()
    assert hits
    assert set(hits) == {"Bearer k"}


# -- the client walks away ----------------------------------------------------------------------


async def test_closing_a_stream_early_disconnects_the_engine(start_server: StartServer) -> None:
    disconnected = asyncio.Event()
    written: list[int] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        watcher = asyncio.create_task(wait_for_disconnect(request, disconnected))
        try:
            for i in range(200):
                await response.write(frame(i))
                written.append(i)
                await asyncio.sleep(0.02)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            await watcher
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        stream = b.chat_stream(CHAT)
        first = await stream.__anext__()
        second = await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(disconnected.wait(), 3)
    finally:
        await b.aclose()
    assert first.data["choices"][0]["delta"]["content"] == "t0"
    assert second.payload
    assert len(written) < 100
    assert b.replicas[0].in_flight == 0


async def test_cancelling_a_non_stream_call_disconnects_the_engine(start_server: StartServer) -> None:
    disconnected = asyncio.Event()
    started = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        started.set()
        await wait_for_disconnect(request, disconnected)
        return web.json_response(COMPLETION)

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        task = asyncio.create_task(b.chat(CHAT))
        await asyncio.wait_for(started.wait(), 3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.wait_for(disconnected.wait(), 3)
    finally:
        await b.aclose()
    assert b.replicas[0].in_flight == 0


# -- upstream error statuses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected_status", "expected_type", "expected_param"),
    [
        (400, {"error": {"message": "max_tokens too big", "type": "invalid_request_error", "param": "max_tokens",
                         "code": "invalid_value"}}, 400, "invalid_request_error", "max_tokens"),
        (422, {"error": "Input validation error: `temperature` must be positive", "error_type": "validation"},
         400, "invalid_request_error", None),
        (401, {"error": {"message": "bad key sk-upstream-secret"}}, 502, "deployment_error", None),
        (404, {"detail": "model not found"}, 502, "deployment_error", None),
        (413, {"error": {"message": "too long"}}, 413, "invalid_request_error", None),
        (429, {"error": {"message": "slow down"}}, 503, "deployment_error", None),
        (500, {"error": {"message": "kaput sk-upstream-secret"}}, 502, "deployment_error", None),
        (503, {"object": "error", "message": "overloaded"}, 503, "deployment_error", None),
        (504, {}, 504, "deployment_error", None),
    ],
)
async def test_upstream_error_statuses_map_onto_the_error_table(
    start_server: StartServer, status: int, body: dict[str, Any], expected_status: int, expected_type: str,
    expected_param: str | None,
) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status, headers={"Retry-After": "3"})

    b = backend(await start_server({"POST /v1/chat/completions": chat}), api_key="sk-upstream-secret")
    try:
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
        with pytest.raises(GatewayError) as caught_stream:
            await collect(b.chat_stream(CHAT))
    finally:
        await b.aclose()
    for error in (caught.value, caught_stream.value):
        assert (error.status, error.type, error.param) == (expected_status, expected_type, expected_param)
        assert "sk-upstream-secret" not in error.message
        assert "sk-upstream-secret" not in repr(error)
        if expected_status == 503:
            assert error.headers["retry-after"] == "3"
    if status == 400:
        assert caught.value.message == "max_tokens too big"


async def test_an_engine_message_cannot_drive_a_terminal_or_forge_a_line(start_server: StartServer) -> None:
    # The message reaches the operator's terminal in "FAILED verification: ..." lines, where an engine's escape
    # sequences acted and its line break printed a "runinfra: ready" line of its own.
    hostile = "\x1b[2J\x1b[31mowned\nruninfra: ready\u2028\x00"

    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": hostile}}, status=500)

    b = backend(await start_server({"POST /v1/chat/completions": chat}))
    try:
        (probe,) = await b.verify(["chat.completions"])
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
    finally:
        await b.aclose()
    for message in (probe.message, caught.value.message):
        assert message.endswith("?[2J?[31mowned?runinfra: ready??"), message
        assert message.isprintable()


async def test_a_key_across_the_message_cut_is_not_half_shown(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "x" * 490 + "bad key sk-upstream-secret"}}, status=500)

    b = backend(await start_server({"POST /v1/chat/completions": chat}), api_key="sk-upstream-secret")
    try:
        with pytest.raises(GatewayError) as caught:
            await b.chat(CHAT)
    finally:
        await b.aclose()
    assert "sk-" not in caught.value.message
    assert caught.value.message.endswith("xbad key [r"), caught.value.message[-40:]  # cut at 500 characters


# -- the other operations ---------------------------------------------------------------------------


async def test_embeddings_images_speech_and_transcriptions(start_server: StartServer) -> None:
    received: dict[str, Any] = {}
    fmt = bytes.fromhex("1000000001000100" + "803e0000" + "007d0000" + "02001000")  # 16 kHz 16-bit mono
    wav = b"RIFF" + (36 + 3200).to_bytes(4, "little") + b"WAVEfmt " + fmt + b"data" + (3200).to_bytes(4, "little")
    wav += bytes(3200)

    async def embeddings(request: web.Request) -> web.StreamResponse:
        received["embeddings"] = await request.json()
        return web.json_response({"object": "list", "data": [{"object": "embedding", "index": 0,
                                                              "embedding": [0.1, 0.2]}], "usage": {}})

    async def images(request: web.Request) -> web.StreamResponse:
        received["images"] = await request.json()
        return web.json_response({"created": 1, "data": [{"b64_json": base64.b64encode(b"png").decode()}]})

    async def speech(request: web.Request) -> web.StreamResponse:
        received["speech"] = await request.json()
        return web.Response(body=wav, content_type="audio/wav")

    async def transcriptions(request: web.Request) -> web.StreamResponse:
        received["transcriptions"] = (await request.read(), request.headers["Content-Type"])
        return web.json_response({"text": "hello"})

    url = await start_server({"POST /v1/embeddings": embeddings, "POST /v1/images/generations": images,
                              "POST /v1/audio/speech": speech, "POST /v1/audio/transcriptions": transcriptions})
    b = backend(url, model="up")
    raw = b'--XyZ\r\nContent-Disposition: form-data; name="model"\r\n\r\ndep\r\n--XyZ\r\nContent-Disposition: ' \
          b'form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n\x00\xff\x10\r\n--XyZ--\r\n'
    try:
        vectors = await b.embeddings({"model": "dep", "input": "x", "encoding_format": "base64"})
        pictures = await b.images({"model": "dep", "prompt": "cat", "response_format": "url"})
        audio = await b.speech({"model": "dep", "input": "hi", "voice": "v", "response_format": "wav"})
        text = await b.transcribe(TranscriptionInput(
            file=b"\x00\xff\x10", filename="a.wav", file_content_type="audio/wav", fields={"model": "dep"},
            raw_body=raw, raw_content_type="multipart/form-data; boundary=XyZ"))
    finally:
        await b.aclose()
    assert vectors["data"][0]["embedding"] == [0.1, 0.2]
    assert received["embeddings"] == {"model": "up", "input": "x"}
    assert (pictures.created, pictures.as_png(0)) == (1, b"png")
    assert received["images"]["response_format"] == "b64_json"
    assert (audio.content, audio.content_type) == (wav, "audio/wav")
    assert audio.seconds == pytest.approx(0.1)
    assert received["transcriptions"] == (raw, "multipart/form-data; boundary=XyZ")
    assert text == {"text": "hello"}


async def test_verify_reports_each_operation(start_server: StartServer, dead_url: str) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        assert (await request.json())["max_tokens"] == 1
        return web.json_response(COMPLETION)

    async def transcriptions(request: web.Request) -> web.StreamResponse:
        body = await request.post()
        assert body["model"] == "dep"
        return web.json_response({"text": ""})

    b = backend(await start_server({"POST /v1/chat/completions": chat,
                                    "POST /v1/audio/transcriptions": transcriptions}))
    try:
        results = await b.verify(["chat.completions", "responses", "audio.transcriptions", "embeddings"])
    finally:
        await b.aclose()
    assert [(r.operation, r.ok) for r in results] == [
        ("chat.completions", True), ("responses", True), ("audio.transcriptions", True), ("embeddings", False)]
    assert all(r.latency_ms > 0 for r in results)
    assert "404" in results[3].message

    dead = backend(dead_url)
    try:
        [result] = await dead.verify(["chat.completions"])
    finally:
        await dead.aclose()
    assert not result.ok
    assert "connection refused" in result.message


async def test_an_oversized_answer_is_refused_not_buffered(start_server: StartServer) -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for _ in range(64):  # 4 MiB, chunked, without end in sight for the client's limit
            await response.write(b" " * 65536)
        await response.write_eof()
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}), max_response_bytes=1024 * 1024)
    error = await refusal(b, b.chat(CHAT))
    assert (error.status, error.type) == (502, "deployment_error")
    assert "max_response_bytes" in error.message


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=x\r\nX-Injected: 1", "multipart/form-data; bé"]
)
async def test_a_content_type_that_cannot_be_a_header_is_refused(content_type: str) -> None:
    b = backend("http://127.0.0.1:9/v1")
    upload = TranscriptionInput(file=b"x", filename="a.wav", file_content_type="audio/wav", fields={},
                                raw_body=b"--x--\r\n", raw_content_type=content_type)
    error = await refusal(b, b.transcribe(upload))
    assert (error.status, error.type) == (400, "invalid_request_error")


async def test_verify_probes_images_speech_and_embeddings(start_server: StartServer) -> None:
    seen: dict[str, Any] = {}

    async def embeddings(request: web.Request) -> web.StreamResponse:
        seen["embeddings"] = await request.json()
        return web.json_response({"data": [{"object": "embedding", "index": 0, "embedding": [0.5] * 8}]})

    async def images(request: web.Request) -> web.StreamResponse:
        seen["images"] = await request.json()
        return web.json_response({"created": 1, "data": [{"b64_json": base64.b64encode(b"\x89PNG").decode()}]})

    async def speech(request: web.Request) -> web.StreamResponse:
        seen["speech"] = await request.json()
        return web.Response(body=b"RIFF....WAVE", content_type="audio/wav")

    url = await start_server({"POST /v1/embeddings": embeddings, "POST /v1/images/generations": images,
                              "POST /v1/audio/speech": speech})
    b = backend(url, model="engine-name", probe_voice="nova", probe_image_size="256x256")
    try:
        results = await b.verify(["embeddings", "images.generate", "audio.speech"])
    finally:
        await b.aclose()
    assert [(r.operation, r.ok) for r in results] == [("embeddings", True), ("images.generate", True),
                                                     ("audio.speech", True)]
    assert results[0].details == {"dimensions": 8}
    assert seen["images"]["size"] == "256x256"
    assert seen["images"]["model"] == "engine-name"
    assert seen["speech"]["voice"] == "nova"
    assert results[2].details["content_type"] == "audio/wav"


async def test_health_check_path_from_the_host_root(start_server: StartServer) -> None:
    hits: list[str] = []

    async def health(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        return web.Response(status=503)

    async def chat(request: web.Request) -> web.StreamResponse:
        return web.json_response({})

    url = await start_server({"GET /health": health, "POST /v1/chat/completions": chat})
    b = UpstreamBackend.from_config("dep", {"base_url": url, "health_check_path": "/health",
                                            "health_check_interval_seconds": 0.05})
    try:
        with contextlib.suppress(GatewayError):
            await b.chat(CHAT)  # starts the client and its health checks
        for _ in range(100):
            if b.replicas[0].last_error:
                break
            await asyncio.sleep(0.02)
    finally:
        await b.aclose()
    assert hits
    assert set(hits) == {"/health"}
    assert b.replicas[0].last_error == "health check answered 503"


async def test_requests_beyond_max_connections_wait_then_time_out(start_server: StartServer) -> None:
    release = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.dumps(COMPLETION)
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
        await response.prepare(request)  # the head goes out at once; the body waits
        await release.wait()
        await response.write(body)
        return response

    b = backend(await start_server({"POST /v1/chat/completions": chat}), max_connections=1,
                first_byte_timeout_seconds=0.3, timeout_seconds=5)
    try:
        first = asyncio.create_task(b.chat(CHAT))
        await asyncio.sleep(0.05)
        with pytest.raises(GatewayError) as caught:  # no connection frees up within its first-byte timeout
            await b.chat(CHAT)
        release.set()
        assert (await first)["id"] == "chatcmpl-1"
        assert (await b.chat(CHAT))["id"] == "chatcmpl-1"  # the slot came back
    finally:
        await b.aclose()
    assert caught.value.status == 504
