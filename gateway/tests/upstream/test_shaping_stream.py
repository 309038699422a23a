"""SSE framing and the chat stream rules: usage chunk kept or stripped, finish_reason only on the last chunk."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from runinfra_gateway.backends.base import ChatChunk
from runinfra_gateway.errors import deployment_error
from runinfra_gateway.shaping import SSE_DONE, ChatStreamShaper, is_usage_chunk, sse_error, sse_event, sse_named_event


def chunk(content: str | None = None, finish: str | None = None, index: int = 0, **extra: Any) -> ChatChunk:
    delta = {} if content is None else {"content": content}
    return ChatChunk.from_dict({
        "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}], **extra,
    })


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
USAGE_CHUNK = ChatChunk.from_dict({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": USAGE})


def events(raw: bytes) -> list[Any]:
    assert raw.endswith(b"\n\n")
    out: list[Any] = []
    for frame in raw.split(b"\n\n")[:-1]:
        assert frame.startswith(b"data: ")
        body = frame[6:]
        out.append("[DONE]" if body == b"[DONE]" else orjson.loads(body))
    return out


def run(shaper: ChatStreamShaper, chunks: list[ChatChunk]) -> list[Any]:
    return events(b"".join(shaper.feed(c) for c in chunks) + shaper.finish())


def test_sse_event_framing() -> None:
    assert sse_event(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert SSE_DONE == b"data: [DONE]\n\n"
    assert sse_named_event("response.created", b"{}") == b"event: response.created\ndata: {}\n\n"
    framed = sse_error(deployment_error("boom"))
    assert orjson.loads(framed[6:-2])["error"]["type"] == "deployment_error"


@given(st.binary(max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b))
def test_sse_event_round_trips_through_the_reader(payload: bytes) -> None:
    from runinfra_gateway.backends._sse_reader import SSEReader

    assert SSEReader().feed(sse_event(payload)) == [payload]


def test_usage_chunk_is_forwarded_when_asked_and_kept_for_billing() -> None:
    shaper = ChatStreamShaper(include_usage=True)
    out = run(shaper, [chunk("Hi"), chunk(None, "stop"), USAGE_CHUNK])
    assert [e if e == "[DONE]" else e["choices"] for e in out][-2:] == [[], "[DONE]"]
    assert out[-2]["usage"] == USAGE
    assert shaper.usage == USAGE


def test_usage_chunk_is_stripped_when_not_asked_but_still_read() -> None:
    shaper = ChatStreamShaper(include_usage=False)
    out = run(shaper, [chunk("Hi"), chunk(None, "stop"), USAGE_CHUNK])
    assert all(e == "[DONE]" or "usage" not in e or e["usage"] is None for e in out)
    assert len(out) == 3
    assert out[-1] == "[DONE]"
    assert shaper.usage == USAGE
    assert shaper.content_chunks == 1


def test_usage_attached_to_the_finishing_choice_chunk_is_split_off() -> None:
    shaper = ChatStreamShaper(include_usage=True)
    out = run(shaper, [chunk("Hi"), chunk(None, "stop", usage=USAGE)])
    assert out[1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in out[1]
    assert out[2]["choices"] == []
    assert out[2]["usage"] == USAGE


def test_plain_chunks_pass_through_byte_for_byte() -> None:
    shaper = ChatStreamShaper(include_usage=False)
    first = ChatChunk(b'{"id": "x",  "choices": [{"index": 0, "delta": {"content": "A"}, "finish_reason": null}]}')
    assert shaper.feed(first) == b"data: " + first.payload + b"\n\n"


def test_finish_reason_moves_to_the_last_chunk_of_its_choice() -> None:
    shaper = ChatStreamShaper(include_usage=False)
    out = run(shaper, [chunk("a"), chunk("b", "stop"), chunk(""), USAGE_CHUNK])
    reasons = [e["choices"][0]["finish_reason"] for e in out if e != "[DONE]"]
    assert reasons == [None, None, "stop"]


@given(st.lists(st.sampled_from(["a", "", None]), min_size=1, max_size=12), st.integers(min_value=0, max_value=11))
def test_finish_reason_appears_exactly_once_and_last(contents: list[str | None], finish_at: int) -> None:
    finish_at = min(finish_at, len(contents) - 1)
    chunks = [chunk(c, "length" if i == finish_at else None) for i, c in enumerate(contents)]
    shaper = ChatStreamShaper(include_usage=True)
    out = run(shaper, [*chunks, USAGE_CHUNK])
    choice_events = [e for e in out if e != "[DONE]" and e["choices"]]
    assert len(choice_events) == len(contents)
    reasons = [e["choices"][0]["finish_reason"] for e in choice_events]
    assert reasons == [None] * (len(contents) - 1) + ["length"]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in choice_events) == "".join(
        c or "" for c in contents
    )


def test_is_usage_chunk() -> None:
    assert is_usage_chunk(USAGE_CHUNK)
    assert not is_usage_chunk(chunk("a"))


def test_chunks_of_one_network_read_are_sent_together() -> None:
    from runinfra_gateway.backends._read_chunks import read_chunk

    def read(content: str, more_ready: bool) -> ChatChunk:
        plain = chunk(content)
        return read_chunk(plain.payload, plain.data, more_ready=more_ready)

    shaper = ChatStreamShaper(include_usage=False)
    assert shaper.feed(read("a", True)) == b""
    assert shaper.feed(read("b", True)) == b""
    sent = shaper.feed(read("c", False))
    assert [e["choices"][0]["delta"]["content"] for e in events(sent)] == ["a", "b", "c"]
    assert shaper.content_chunks == 3
    assert shaper.feed(read("d", True)) == b""
    assert [e if e == "[DONE]" else e["choices"][0]["delta"]["content"] for e in events(shaper.finish())] == [
        "d", "[DONE]"]


def test_responses_events_of_one_network_read_are_sent_together() -> None:
    from runinfra_gateway.backends._read_chunks import read_chunk
    from runinfra_gateway.shaping import ResponsesStreamAdapter

    adapter = ResponsesStreamAdapter({"model": "m", "input": "x"})
    adapter.start()
    first = chunk("He")
    assert adapter.feed(read_chunk(first.payload, first.data, more_ready=True)) == b""
    second = chunk("llo")
    sent = adapter.feed(read_chunk(second.payload, second.data, more_ready=False))
    assert sent.count(b"event: response.output_text.delta") == 2
    third = chunk("!")
    assert adapter.feed(read_chunk(third.payload, third.data, more_ready=True)) == b""
    closing = adapter.finish()
    assert closing.startswith(b"event: response.output_text.delta")
    assert b'"output_text":"Hello!"' in closing
