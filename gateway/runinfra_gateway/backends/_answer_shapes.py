"""What an upstream engine's answers must look like before the gateway relays them.

An engine's answer is relayed as the engine shaped it, so a client's SDK parses it. A body that is not
OpenAI's shape in the parts every client reads (a chat completion's ``choices`` list of objects, each
with a ``message`` whose ``content`` is text or null; an embeddings ``data`` list with one vector of
numbers per input; a transcription's ``text`` and timed ``segments``) would pass through as a 200 and
fail in the client's parser instead, after the request was charged. Fields a client may not read
(``logprobs``, extra keys) are left as the engine sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runinfra_gateway.real_numbers import is_number

__all__ = ["completion_fault", "embeddings_fault", "transcription_fault"]


def completion_fault(completion: Mapping[str, Any]) -> str | None:
    """Why ``completion`` is not a chat completion a client can read, or None when it is one."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return "'choices' is not a non-empty list"
    for key, kind, name in (("id", str, "text"), ("created", int, "an integer")):
        value = completion.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"'{key}' is not {name}"
    for index, choice in enumerate(choices):
        fault = _choice_fault(choice)
        if fault is not None:
            return f"choices[{index}]: {fault}"
    return None


def _choice_fault(choice: object) -> str | None:
    if not isinstance(choice, dict):
        return "not an object"
    index = choice.get("index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        return "'index' is not an integer"
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        return "'finish_reason' is not text"
    message = choice.get("message")
    if not isinstance(message, dict):
        return "'message' is not an object"
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return "'message.content' is neither text nor null"
    role = message.get("role")
    if role is not None and not isinstance(role, str):
        return "'message.role' is not text"
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        return "'message.tool_calls' is not a list"
    return None


def embeddings_fault(result: Mapping[str, Any], inputs: int) -> str | None:
    """Why ``result`` is not one embedding of numbers per input (``inputs`` of them), or None when it is."""
    data = result.get("data")
    if not isinstance(data, list):
        return "'data' is not a list"
    if len(data) != inputs:
        return f"{len(data)} embeddings for {inputs} inputs"
    for index, item in enumerate(data):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not isinstance(vector, list) or not vector:
            return f"data[{index}] has no 'embedding' list"
        try:
            sum(vector)  # in C, and the cheapest check (1.7 µs for 384 floats): a string, list or null raises
        except TypeError:
            return f"data[{index}].embedding is not a list of numbers"
    return None


def transcription_fault(result: Mapping[str, Any]) -> str | None:
    """Why ``result`` is not a transcription a client can read (``text``; timed ``segments`` if any), or None."""
    if not isinstance(result.get("text"), str):
        return "'text' is not text"
    language = result.get("language")
    if language is not None and not isinstance(language, str):
        return "'language' is not text"
    segments = result.get("segments")
    if segments is None:
        return None
    if not isinstance(segments, list):
        return "'segments' is not a list"
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict) or not isinstance(segment.get("text"), str):
            return f"segments[{index}] has no 'text'"
        if not all(is_number(segment.get(key)) for key in ("start", "end")):
            return f"segments[{index}] has no numeric 'start' and 'end'"
    return None
