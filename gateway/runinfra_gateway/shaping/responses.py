"""The Responses adapter: ``/v1/responses`` served through the chat-completions path.

``responses_to_chat`` turns a Responses request into a chat body (``input`` and
``instructions`` become messages, ``max_output_tokens`` becomes ``max_tokens``,
function tools and formats are re-spelled); ``chat_to_response`` rewraps the
chat completion. The adapter keeps no state, so every field that needs state,
server-side items, reasoning controls or background jobs is refused by name
(400 ``unsupported_parameter`` with ``param``), never silently dropped.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Mapping

from runinfra_gateway.errors import GatewayError, invalid_request

__all__ = ["chat_to_response", "new_response_id", "responses_to_chat"]

# Fields that only make sense with server-side state, items or jobs, with why.
_REFUSED: dict[str, str] = {
    "previous_response_id": "the Responses adapter keeps no conversation state",
    "conversation": "the Responses adapter keeps no conversation state",
    "include": "the Responses adapter has no extra output items to include",
    "reasoning": "reasoning controls are not supported by the Responses adapter",
    "background": "background responses are not supported by the Responses adapter",
    "prompt": "stored prompt templates are not supported by the Responses adapter",
    "store": "the Responses adapter does not store responses",
    "truncation": "server-side truncation is not supported by the Responses adapter",
    "max_tool_calls": "built-in tool calling is not supported by the Responses adapter",
    "service_tier": "service tiers are not supported by the Responses adapter",
    "stream_options": "Responses stream options are not supported by the Responses adapter",
    "top_logprobs": "logprobs are not supported by the Responses adapter",
    "prompt_cache_key": "prompt caching controls are not supported by the Responses adapter",
    "safety_identifier": "safety identifiers are not supported by the Responses adapter",
}
# The value each refused field may carry because it asks for exactly what the adapter does anyway.
_HARMLESS: dict[str, tuple[Any, ...]] = {
    "store": (False, None),
    "background": (False, None),
    "include": (None, []),
    "truncation": (None, "disabled"),
    "previous_response_id": (None,),
    "conversation": (None,),
    "reasoning": (None,),
}
# Fields copied to the chat body under the same name.
_PASSED = ("model", "stream", "temperature", "top_p", "user", "parallel_tool_calls", "metadata")
_HANDLED = frozenset({*_PASSED, "input", "instructions", "max_output_tokens", "tools", "tool_choice",
                      "response_format", "text"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def _refuse(param: str, why: str) -> GatewayError:
    return GatewayError(
        400,
        "invalid_request_error",
        f"Parameter {param!r} is not supported: {why}.",
        code="unsupported_parameter",
        param=param,
    )


def responses_to_chat(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat body for a Responses request; raises :class:`GatewayError` (400) on what it cannot honour."""
    for name in body:
        if name in _REFUSED and body[name] not in _HARMLESS.get(name, ()):
            raise _refuse(name, _REFUSED[name])
        if name not in _HANDLED and name not in _REFUSED:
            raise _refuse(name, "unknown to the Responses adapter")
    chat: dict[str, Any] = {name: body[name] for name in _PASSED if name in body}
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_request("'instructions' must be a string.", param="instructions")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_input_messages(body.get("input")))
    chat["messages"] = messages
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools") is not None:
        chat["tools"] = _chat_tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    response_format = _response_format(body)
    if response_format is not None:
        chat["response_format"] = response_format
    return chat


def _input_messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        if not value:
            raise invalid_request("'input' must not be empty.", param="input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        code = "missing_field" if value is None else "invalid_value"
        raise invalid_request("'input' must be a non-empty string or array of messages.", code=code, param="input")
    return [_input_message(item, f"input[{i}]") for i, item in enumerate(value)]


def _input_message(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise invalid_request(f"'{where}' must be a message object.", param=where)
    kind = item.get("type", "message")
    if kind != "message":
        raise _refuse(f"{where}.type", f"input items of type {str(kind)[:40]!r} are not supported, only messages")
    role = item.get("role")
    if role not in _ROLES:
        raise invalid_request(f"'{where}.role' must be one of user, assistant, system, developer.",
                              param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": _ROLES[role], "content": content}
    if not isinstance(content, list) or not content:
        raise invalid_request(f"'{where}.content' must be a string or a non-empty array of text parts.",
                              param=f"{where}.content")
    texts: list[str] = []
    for j, part in enumerate(content):
        place = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise invalid_request(f"'{place}' must be an object.", param=place)
        if part.get("type") not in _TEXT_PARTS:
            raise _refuse(f"{place}.type", f"content parts of type {str(part.get('type'))[:40]!r} are not supported")
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_request(f"'{place}.text' must be a string.", param=f"{place}.text")
        texts.append(text)
    return {"role": _ROLES[role], "content": "".join(texts)}


def _chat_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid_request("'tools' must be an array.", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _refuse(f"tools[{i}]", f"only function tools are supported, not {str(kind)[:40]!r}")
        if isinstance(tool.get("function"), dict):  # already chat-shaped
            out.append(tool)
            continue
        if not isinstance(tool.get("name"), str):
            raise invalid_request(f"'tools[{i}].name' must be a string.", param=f"tools[{i}].name")
        function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        if isinstance(choice.get("function"), dict):
            return choice
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _refuse("tool_choice", "only 'none', 'auto', 'required' or a function are supported")


def _response_format(body: Mapping[str, Any]) -> Any:
    if body.get("response_format") is not None:
        return body["response_format"]
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict) or set(text) - {"format"}:
        raise _refuse("text", "only 'text.format' is supported")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise invalid_request("'text.format.type' must be text, json_object or json_schema.", param="text.format")
    if fmt["type"] != "json_schema":
        return {"type": fmt["type"]}
    schema = {key: fmt[key] for key in ("name", "schema", "strict", "description") if key in fmt}
    return {"type": "json_schema", "json_schema": schema}


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(12)


def chat_to_response(
    chat_completion: Mapping[str, Any], request_body: Mapping[str, Any], *, response_id: str | None = None
) -> dict[str, Any]:
    """The Responses envelope for a chat completion answering ``request_body`` (the original Responses request)."""
    choices = chat_completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    raw_message = choice.get("message")
    message: Mapping[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    output: list[dict[str, Any]] = []
    if text or not message.get("tool_calls"):
        output.append(output_message(text, status="completed"))
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            output.append({
                "type": "function_call",
                "id": "fc_" + secrets.token_hex(12),
                "call_id": call.get("id"),
                "name": call["function"].get("name"),
                "arguments": call["function"].get("arguments", ""),
                "status": "completed",
            })
    usage = chat_completion.get("usage") if isinstance(chat_completion.get("usage"), dict) else {}
    return response_envelope(
        request_body,
        response_id=response_id or new_response_id(),
        created_at=chat_completion.get("created") if isinstance(chat_completion.get("created"), int) else None,
        finish_reason=choice.get("finish_reason"),
        output=output,
        output_text=text,
        usage=usage,
    )


def output_message(text: str, *, status: str, message_id: str | None = None) -> dict[str, Any]:
    """One assistant message output item with a single ``output_text`` part."""
    return {
        "type": "message",
        "id": message_id or "msg_" + secrets.token_hex(12),
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def response_envelope(
    request_body: Mapping[str, Any],
    *,
    response_id: str,
    created_at: int | None,
    finish_reason: Any,
    output: list[dict[str, Any]],
    output_text: str,
    usage: Mapping[str, Any] | None,
    status: str | None = None,
) -> dict[str, Any]:
    """The ``response`` object; ``status`` follows ``finish_reason`` unless given (``in_progress`` while streaming)."""
    incomplete = finish_reason == "length"
    if status is None:
        status = "incomplete" if incomplete else "completed"
    input_tokens = int((usage or {}).get("prompt_tokens") or 0)
    output_tokens = int((usage or {}).get("completion_tokens") or 0)
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at if created_at is not None else int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request_body.get("instructions"),
        "max_output_tokens": request_body.get("max_output_tokens"),
        "model": request_body.get("model"),
        "output": output,
        "output_text": output_text,
        "parallel_tool_calls": request_body.get("parallel_tool_calls", True),
        "temperature": request_body.get("temperature"),
        "top_p": request_body.get("top_p"),
        "tool_choice": request_body.get("tool_choice", "auto"),
        "tools": request_body.get("tools") or [],
        "metadata": request_body.get("metadata") or {},
        "usage": None if usage is None else {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": int((usage or {}).get("total_tokens") or input_tokens + output_tokens),
        },
    }
