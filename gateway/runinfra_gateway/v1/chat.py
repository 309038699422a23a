"""POST /chat/completions and POST /responses (the Responses adapter over the chat path)."""

from __future__ import annotations

from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.billing import Usage, reported_count
from runinfra_gateway.params import check_fields
from runinfra_gateway.shaping import ChatStreamShaper, ResponsesStreamAdapter, chat_to_response, responses_to_chat
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import Reply, run_charged
from runinfra_gateway.v1.request import JsonRequest
from runinfra_gateway.v1.streaming import relay_stream

__all__ = ["chat_completions", "responses"]

_JSON = b"application/json"


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise errors.invalid_request("'messages' is required.", code="missing_field", param="messages")
    if not isinstance(messages, list) or not messages:
        raise errors.invalid_request("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or not message["role"]:
            raise errors.invalid_request(
                f"'messages[{index}]' must be an object with a non-empty 'role'.", param=f"messages[{index}]"
            )


def _wants_stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise errors.invalid_request("'stream' must be true or false.", param="stream")
    return stream


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise errors.invalid_request("'stream_options' supports only 'include_usage'.", param="stream_options")
    include = options.get("include_usage", False)
    if not isinstance(include, bool):
        raise errors.invalid_request("'stream_options.include_usage' must be true or false.",
                                     param="stream_options.include_usage")
    return include


def _chat_usage(completion: dict[str, Any]) -> Usage:
    raw = completion.get("usage")
    usage: dict[str, Any] = raw if isinstance(raw, dict) else {}
    # Backends hand over chargeable counts (the upstream one replaces any it cannot charge with an estimate).
    return Usage(input_tokens=reported_count(usage.get("prompt_tokens")) or 0,
                 output_tokens=reported_count(usage.get("completion_tokens")) or 0)


async def chat_completions(state: GatewayState, call: Call, request: JsonRequest) -> None:
    body = request.body
    runtime = request.deployment(state, "chat.completions")
    check_fields(body, runtime.allowed["chat.completions"], runtime.id)
    _check_messages(body.get("messages"))
    stream = _wants_stream(body)
    include_usage = _include_usage(body)
    if stream:
        await relay_stream(state, call, runtime, "chat.completions", body, body, request.raw,
                           ChatStreamShaper(include_usage=include_usage))
        return
    if body.get("stream_options") is not None:
        raise errors.invalid_request("'stream_options' is only valid with stream=true.", param="stream_options")

    async def work() -> Reply:
        assert runtime.backend is not None
        completion = await runtime.backend.chat(body)
        completion["model"] = runtime.id
        return Reply(orjson.dumps(completion), _JSON, _chat_usage(completion))

    await run_charged(state, call, runtime, "chat.completions", body, request.raw, work)


async def responses(state: GatewayState, call: Call, request: JsonRequest) -> None:
    body = request.body
    runtime = request.deployment(state, "responses")
    chat_body = responses_to_chat(body)
    check_fields(chat_body, runtime.allowed["responses"], runtime.id)
    if chat_body.get("stream"):
        adapter = ResponsesStreamAdapter(body)
        await relay_stream(state, call, runtime, "responses", chat_body, body, request.raw, adapter,
                           opening=adapter.start(), error_event=adapter.error)
        return

    async def work() -> Reply:
        assert runtime.backend is not None
        completion = await runtime.backend.chat(chat_body)
        response = chat_to_response(completion, body)
        return Reply(orjson.dumps(response), _JSON, _chat_usage(completion))

    await run_charged(state, call, runtime, "responses", body, request.raw, work)
