"""Server-sent events: the parser as properties, and streams over real sockets."""

from __future__ import annotations

import json
import threading
import time
from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runinfra import (
    DeploymentError,
    RunInfra,
    RunInfraConnectionError,
    RunInfraStream,
    RunInfraStreamParseError,
    RunInfraTimeoutError,
)
from runinfra._streaming import iter_sse
from sdk_servers import API_KEY, Exchange, ScriptedServer, sse_frames, sse_handler

MESSAGES = [{"role": "user", "content": "hi"}]
CHUNKS = [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": str(i)}}]}
          for i in range(50)]  # fmt: skip

# --- the parser -------------------------------------------------------------------------

text_line = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30)
event_strategy = st.tuples(
    st.one_of(st.none(), st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=10)),
    st.lists(text_line, min_size=1, max_size=3).filter(lambda lines: "\n".join(lines) != ""),
)


def _encode(events: List[Tuple[Optional[str], List[str]]], newline: str, comments: bool) -> bytes:
    out = []
    for name, lines in events:
        if comments:
            out.append(": keep-alive" + newline)
        if name is not None:
            out.append(f"event: {name}{newline}")
        out.append("id: 7" + newline)
        for line in lines:
            out.append(f"data: {line}{newline}")  # exactly one space after the colon is dropped
        out.append(newline)
    return "".join(out).encode("utf-8")


def _split(data: bytes, cuts: List[int]) -> List[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(event_strategy, max_size=6),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_parser_yields_each_event_whatever_the_chunking(
    events: List[Tuple[Optional[str], List[str]]], newline: str, comments: bool, cuts: List[int]
) -> None:
    data = _encode(events, newline, comments)
    parsed = list(iter_sse(_split(data, cuts)))
    expected = [(name, "\n".join(lines).encode("utf-8")) for name, lines in events]
    assert parsed == expected


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=5))
def test_parser_never_fails_with_anything_but_its_typed_error(data: bytes, cuts: List[int]) -> None:
    try:
        whole = list(iter_sse([data]))
    except RunInfraStreamParseError:
        with pytest.raises(RunInfraStreamParseError):
            list(iter_sse(_split(data, cuts)))
        return
    assert list(iter_sse(_split(data, cuts))) == whole


def test_parser_rules() -> None:
    assert list(iter_sse([b"data\n\n"])) == []  # empty data is not dispatched
    assert list(iter_sse([b"data\ndata\n\n"])) == [(None, b"\n")]
    assert list(iter_sse([b"event: x\n\n"])) == []
    assert list(iter_sse([b"\xef\xbb\xbfdata: 1\n\n"])) == [(None, b"1")]
    assert list(iter_sse([b"data: [DONE]\n"])) == [(None, b"[DONE]")]
    with pytest.raises(RunInfraStreamParseError):
        list(iter_sse([b"data: {\"a\": 1}\n"]))
    with pytest.raises(RunInfraStreamParseError):
        list(iter_sse([b"data: 1"]))


# --- streams over sockets ---------------------------------------------------------------


def _client(server: ScriptedServer, **kw: object) -> RunInfra:
    options = {"max_retries": 0, "timeout_seconds": 5.0}
    options.update(kw)
    return RunInfra(api_key=API_KEY, base_url=server.url, **options)  # type: ignore[arg-type]


def test_chat_stream_yields_chunks_and_reuses_the_connection(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames(CHUNKS), pieces=7))
    with _client(server) as client:
        for _ in range(3):
            stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            assert isinstance(stream, RunInfraStream)
            assert stream.request_id == "req_stream"
            assert list(stream) == CHUNKS
    assert server.connections == 1
    sent = server.requests[0]
    assert sent.json()["stream"] is True
    assert sent.headers["accept"] == "text/event-stream"


def test_responses_stream_with_event_names(server: ScriptedServer) -> None:
    frames = (
        b'event: response.created\ndata: {"type": "response.created"}\n\n'
        b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": "Hi"}\n\n'
        b'event: response.completed\ndata: {"type": "response.completed", "response": {"status": "completed"}}\n\n'
    )
    server.on("POST", "/v1/responses", sse_handler(frames, pieces=3))
    stream = _client(server).responses.create(model="m", input="Hello", stream=True)
    deltas = [event.get("delta", "") for event in stream if event.get("type") == "response.output_text.delta"]
    assert deltas == ["Hi"]


def test_closing_early_closes_the_connection(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames(CHUNKS), pieces=50))
    with _client(server) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        iterator = iter(stream)
        try:
            first = next(iterator)
        finally:
            iterator.close()
        assert first == CHUNKS[0]
        stream.close()  # idempotent
        with pytest.raises(StopIteration):
            next(iterator)
        again = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with again:
            next(again)
        assert list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True)) == CHUNKS
    assert server.connections == 3


def test_malformed_frame_raises_with_request_id(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", sse_handler(b'data: {"ok": 1}\n\ndata: {not json\n\n'))
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert next(stream) == {"ok": 1}
    with pytest.raises(RunInfraStreamParseError) as caught:
        next(stream)
    assert caught.value.request_id == "req_stream"


def test_a_frame_nested_too_deep_is_a_parse_error(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", sse_handler(b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n"))
    with pytest.raises(RunInfraStreamParseError):
        list(_client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))


def test_error_event_in_stream_is_typed(server: ScriptedServer) -> None:
    frames = b'data: {"error": {"message": "engine died", "type": "deployment_error"}}\n\n'
    server.on("POST", "/v1/chat/completions", sse_handler(frames))
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(DeploymentError) as caught:
        list(stream)
    assert caught.value.request_id == "req_stream"


def test_truncated_stream_is_a_connection_error(server: ScriptedServer) -> None:
    def truncated(exchange: Exchange) -> None:
        exchange.start_chunked()
        exchange.chunk(b'data: {"a": 1}\n\n')
        exchange.drop()

    server.on("POST", "/v1/chat/completions", truncated)
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert next(stream) == {"a": 1}
    with pytest.raises(RunInfraConnectionError) as caught:
        next(stream)
    assert caught.value.request_id == "req_stream"


def test_short_content_length_stream_is_a_connection_error(server: ScriptedServer) -> None:
    def short(exchange: Exchange) -> None:
        exchange.send_raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-request-id: req_cl\r\n"
                          b"Content-Length: 500\r\n\r\ndata: {\"a\": 1}\n\n")  # fmt: skip
        exchange.drop()

    server.on("POST", "/v1/chat/completions", short)
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(RunInfraConnectionError) as caught:
        list(stream)
    assert caught.value.request_id == "req_cl"


def test_stalled_stream_times_out(server: ScriptedServer) -> None:
    release = threading.Event()

    def stall(exchange: Exchange) -> None:
        exchange.start_chunked()
        exchange.chunk(b'data: {"a": 1}\n\n')
        release.wait(2)

    server.on("POST", "/v1/chat/completions", stall)
    stream = _client(server, timeout_seconds=0.2).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert next(stream) == {"a": 1}
    started = time.monotonic()
    with pytest.raises(RunInfraTimeoutError) as caught:
        next(stream)
    assert caught.value.request_id == "req_stream"
    assert time.monotonic() - started < 1.5
    release.set()


def test_stream_answered_with_json_is_a_parse_error(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", lambda ex: ex.respond_json({"id": "x"}))
    with pytest.raises(RunInfraStreamParseError):
        _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)


def test_usage_chunk_with_stream_options(server: ScriptedServer) -> None:
    usage = {"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames([CHUNKS[0], usage])))
    stream = _client(server).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert list(stream)[-1]["usage"]["total_tokens"] == 3
    assert json.loads(server.requests[0].body)["stream_options"] == {"include_usage": True}


def test_iterating_a_temporary_stream_reads_it_all(server: ScriptedServer) -> None:
    # ``for event in client...create(stream=True)`` drops the stream object at once: the
    # iterator alone must keep the response open. Content-Length framing, as static servers send.
    frames = sse_frames(CHUNKS)
    server.on("POST", "/v1/chat/completions", lambda ex: ex.respond(200, frames, content_type="text/event-stream"))
    with _client(server) as client:
        for _ in range(2):
            count = 0
            for _event in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
                count += 1
            assert count == len(CHUNKS)
    assert server.connections == 1


def test_a_stream_dropped_unread_releases_its_connection(server: ScriptedServer) -> None:
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames(CHUNKS)))
    with _client(server) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        del stream
        assert list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True)) == CHUNKS
    assert server.connections == 2


def test_a_line_that_never_ends_is_refused(server: ScriptedServer) -> None:
    from runinfra._streaming import MAX_EVENT_BYTES

    def endless(exchange: Exchange) -> None:
        exchange.start_chunked()
        block = b"x" * (1 << 20)
        for _ in range(MAX_EVENT_BYTES // len(block) + 2):
            exchange.chunk(block)
        exchange.end_chunks()

    server.on("POST", "/v1/chat/completions", endless)
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(RunInfraStreamParseError) as caught:
        list(stream)
    assert caught.value.request_id == "req_stream"


def test_a_chunk_with_a_null_error_field_is_data_not_an_error(server: ScriptedServer) -> None:
    # Some OpenAI-compatible engines put "error": null on every chunk; only an error object is an error.
    chunks = [{"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}], "error": None}]
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames(chunks)))
    assert list(_client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)) == chunks


def test_a_stream_cut_at_an_event_boundary_is_not_a_complete_answer(server: ScriptedServer) -> None:
    # A body that ends cleanly before the chat stream's "data: [DONE]" (or before the Responses stream's
    # final response.* event) is a cut answer, not a short one: it must not read as complete.
    server.on("POST", "/v1/chat/completions", sse_handler(sse_frames(CHUNKS[:3], done=False)))
    stream = _client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert [next(stream) for _ in range(3)] == CHUNKS[:3]
    with pytest.raises(RunInfraConnectionError) as caught:
        next(stream)
    assert caught.value.request_id == "req_stream"

    delta = b'data: {"type": "response.output_text.delta", "delta": "Hi"}\n\n'
    server.on("POST", "/v1/responses", sse_handler(delta))
    with pytest.raises(RunInfraConnectionError):
        list(_client(server).responses.create(model="m", input="x", stream=True))
    for final in ("response.completed", "response.incomplete", "response.failed"):
        last = b'data: {"type": "%s", "response": {}}\n\n' % final.encode()
        server.on("POST", "/v1/responses", sse_handler(delta + last))
        assert len(list(_client(server).responses.create(model="m", input="x", stream=True))) == 2
