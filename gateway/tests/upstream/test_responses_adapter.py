"""The Responses adapter: request mapping, refusals by name, the envelope and the stream events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runinfra_gateway.backends.base import ChatChunk
from runinfra_gateway.errors import GatewayError, deployment_error
from runinfra_gateway.shaping import ResponsesStreamAdapter, chat_to_response, responses_to_chat


def test_string_input_and_instructions_become_messages() -> None:
    chat = responses_to_chat({"model": "m", "input": "Hello", "instructions": "Be brief.", "max_output_tokens": 7,
                              "temperature": 0.2, "top_p": 0.9, "stream": True})
    assert chat == {
        "model": "m", "stream": True, "temperature": 0.2, "top_p": 0.9, "max_tokens": 7,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
    }


def test_message_array_with_text_parts() -> None:
    chat = responses_to_chat({"model": "m", "input": [
        {"role": "developer", "content": "Rules."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi "},
                                                        {"type": "input_text", "text": "there"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        {"role": "user", "content": "And?"},
    ]})
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "And?"},
    ]


def test_function_tools_tool_choice_and_formats_are_respelled() -> None:
    chat = responses_to_chat({
        "model": "m", "input": "x",
        "tools": [{"type": "function", "name": "get", "description": "d", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "get"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    })
    assert chat["tools"] == [{"type": "function", "function": {"name": "get", "description": "d",
                                                               "parameters": {"type": "object"}}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get"}}
    schema = {"name": "out", "schema": {"type": "object"}, "strict": True}
    assert chat["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert responses_to_chat({"model": "m", "input": "x", "response_format": {"type": "json_object"}})[
        "response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("previous_response_id", "resp_1"), ("store", True), ("include", ["reasoning.encrypted_content"]),
        ("reasoning", {"effort": "high"}), ("background", True), ("conversation", "conv_1"),
        ("prompt", {"id": "pmpt_1"}), ("truncation", "auto"), ("service_tier", "flex"), ("brand_new_field", 1),
    ],
)
def test_stateful_and_unknown_fields_are_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"model": "m", "input": "x", field: value})
    error = caught.value
    assert (error.status, error.type, error.code, error.param) == (400, "invalid_request_error",
                                                                   "unsupported_parameter", field)
    assert field in error.message


def test_fields_that_ask_for_what_the_adapter_does_anyway_are_accepted() -> None:
    chat = responses_to_chat({"model": "m", "input": "x", "store": False, "background": False, "include": []})
    assert "store" not in chat
    assert "background" not in chat


@pytest.mark.parametrize(
    ("tool", "param"),
    [({"type": "web_search"}, "tools[0]"), ({"type": "file_search", "vector_store_ids": ["vs"]}, "tools[0]"),
     ({"type": "mcp", "server_url": "https://x"}, "tools[0]")],
)
def test_tools_by_reference_are_refused(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        responses_to_chat({"model": "m", "input": "x", "tools": [tool]})
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m"}, "input", "missing_field"),
        ({"model": "m", "input": ""}, "input", "invalid_value"),
        ({"model": "m", "input": []}, "input", "invalid_value"),
        ({"model": "m", "input": 5}, "input", "invalid_value"),
        ({"model": "m", "input": ["hi"]}, "input[0]", "invalid_value"),
        ({"model": "m", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role", "invalid_value"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
         "input[0].content[0].type", "unsupported_parameter"),
        ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
         "input[0].type", "unsupported_parameter"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]},
         "input[0].content[0].text", "invalid_value"),
        ({"model": "m", "input": "x", "instructions": ["no"]}, "instructions", "invalid_value"),
    ],
)
def test_malformed_input_gets_a_typed_400(body: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(GatewayError) as caught:
        responses_to_chat(body)
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, code)


@given(st.dictionaries(st.text(max_size=12), st.none() | st.integers() | st.text(max_size=5), max_size=6),
       st.text(min_size=1, max_size=20))
def test_hostile_bodies_map_or_refuse_but_never_crash(extra: dict[str, Any], text: str) -> None:
    body = {**extra, "model": "m", "input": text}
    refused: GatewayError | None = None
    try:
        chat = responses_to_chat(body)
    except GatewayError as error:
        refused = error
    if refused is not None:
        assert refused.status == 400
        assert refused.param is not None
    else:
        assert chat["messages"][-1] == {"role": "user", "content": text}


COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "upstream-name",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}


def test_chat_completion_becomes_a_response() -> None:
    response = chat_to_response(COMPLETION, {"model": "smollm2", "input": "hi", "instructions": "Be brief."})
    assert response["id"].startswith("resp_")
    assert response["object"] == "response"
    assert (response["status"], response["incomplete_details"]) == ("completed", None)
    assert response["created_at"] == 1700000000
    assert response["model"] == "smollm2"
    assert response["output_text"] == "Hello there"
    [message] = response["output"]
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"] == [{"type": "output_text", "text": "Hello there", "annotations": []}]
    assert response["usage"] == {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    assert response["instructions"] == "Be brief."


def test_length_finish_makes_the_response_incomplete() -> None:
    cut = {**COMPLETION, "choices": [{**COMPLETION["choices"][0], "finish_reason": "length"}]}
    response = chat_to_response(cut, {"model": "m", "input": "hi", "max_output_tokens": 2})
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


def test_tool_calls_become_function_call_items() -> None:
    message = {"role": "assistant", "content": None,
               "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get", "arguments": "{}"}}]}
    completion = {**COMPLETION, "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    response = chat_to_response(completion, {"model": "m", "input": "x"})
    assert [item["type"] for item in response["output"]] == ["function_call"]
    assert response["output"][0]["call_id"] == "call_1"
    assert response["output"][0]["name"] == "get"


def parse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in raw.split(b"\n\n")[:-1]:
        event_line, data_line = frame.split(b"\n")
        data = orjson.loads(data_line.removeprefix(b"data: "))
        assert event_line == b"event: " + data["type"].encode()
        out.append(data)
    return out


def stream_chunks(texts: list[str], finish: str) -> list[ChatChunk]:
    chunks = [ChatChunk.from_dict({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]})
              for t in texts]
    chunks.append(ChatChunk.from_dict({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}))
    chunks.append(ChatChunk.from_dict({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2,
                                                                "total_tokens": 6}}))
    return chunks


@pytest.mark.parametrize(("finish", "status"), [("stop", "completed"), ("length", "incomplete")])
def test_stream_events_in_order_with_the_final_response(finish: str, status: str) -> None:
    adapter = ResponsesStreamAdapter({"model": "m", "input": "hi", "max_output_tokens": 2})
    raw = adapter.start() + b"".join(adapter.feed(c) for c in stream_chunks(["He", "llo"], finish)) + adapter.finish()
    events = parse_events(raw)
    types = [e["type"] for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["He", "llo"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    final = events[-1]["response"]
    assert final["status"] == status
    assert final["output_text"] == "Hello"
    assert final["usage"] == {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}
    assert final["incomplete_details"] == ({"reason": "max_output_tokens"} if status == "incomplete" else None)
    assert final["id"] == events[0]["response"]["id"] == adapter.response_id
    assert adapter.response == final
    assert adapter.content_chunks == 2


def test_stream_error_event() -> None:
    adapter = ResponsesStreamAdapter({"model": "m", "input": "hi"})
    [event] = parse_events(adapter.error(deployment_error("upstream died")))
    assert event["type"] == "error"
    assert event["message"] == "upstream died"
