"""Shaping a chat completion stream for the client that asked for it.

The request path always asks the backend for usage, so the stream it gets ends
with a ``choices: []`` chunk carrying ``usage``. :class:`ChatStreamShaper`
keeps that usage for billing, forwards it only when the client asked for
``stream_options.include_usage``, and makes sure ``finish_reason`` appears
only on the last chunk of each choice (some engines send it on a chunk that is
followed by more deltas, or attach usage to the finishing choice chunk).

Chunks whose ``finish_reason`` is null and that carry no usage are passed
through as the engine's bytes; only the rare chunks that need changing are
re-encoded. A chunk flagged ``more_ready`` (the upstream backend's chunks from
one network read) has its bytes kept and sent with the last chunk of the read:
one write per read instead of one per event, with no added wait.
"""

from __future__ import annotations

from typing import Any

import orjson

from runinfra_gateway.backends.base import ChatChunk
from runinfra_gateway.shaping._read_batch import ReadBatch
from runinfra_gateway.shaping.sse import SSE_DONE, sse_event

__all__ = ["ChatStreamShaper", "is_usage_chunk"]


def is_usage_chunk(chunk: ChatChunk) -> bool:
    """True for the final ``choices: []`` chunk that carries ``usage``."""
    data = chunk.data
    return not data.get("choices") and isinstance(data.get("usage"), dict)


class ChatStreamShaper:
    """Turns backend chunks into the SSE bytes one client should see.

    ``feed`` returns the bytes to send now (possibly empty: a chunk may be held
    back until the next one shows it was not the last, or until the last chunk
    of its network read); ``finish`` returns the rest, the usage chunk when the
    client asked for it, and ``data: [DONE]``.
    """

    def __init__(self, *, include_usage: bool) -> None:
        self.include_usage = include_usage
        #: The usage the engine reported (``prompt_tokens``, ``completion_tokens``, ...), once seen.
        self.usage: dict[str, Any] | None = None
        #: Choice chunks with non-empty content delivered to the client so far (≈ output tokens).
        self.content_chunks = 0
        self._usage_chunk: dict[str, Any] | None = None
        self._held: dict[str, Any] | None = None
        self._pending_finish: dict[int, Any] = {}
        self._read = ReadBatch()

    def feed(self, chunk: ChatChunk) -> bytes:
        return self._read.add(chunk, self._shape(chunk))

    def _shape(self, chunk: ChatChunk) -> bytes:
        data = chunk.data
        choices = data.get("choices")
        # Fast path, nearly every chunk: one choice, not finishing, no usage, nothing held back.
        if (
            type(choices) is list
            and len(choices) == 1
            and data.get("usage") is None
            and self._held is None
            and not self._pending_finish
        ):
            choice = choices[0]
            if type(choice) is dict and choice.get("finish_reason") is None:
                delta = choice.get("delta")
                if type(delta) is dict and (delta.get("content") or delta.get("tool_calls")):
                    self.content_chunks += 1
                return b"data: " + chunk.payload + b"\n\n"
        return self._shape_in_full(chunk, data)

    def _shape_in_full(self, chunk: ChatChunk, data: dict[str, Any]) -> bytes:
        choices = data.get("choices")
        usage = data.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            self._usage_chunk = data
        if usage is not None:  # sent once, last (a malformed one not at all: the gateway's estimate follows)
            if not choices:
                return b""
            data = {key: value for key, value in data.items() if key != "usage"}
        if not isinstance(choices, list):
            return b""
        self.content_chunks += sum(1 for choice in choices if _has_content(choice))
        finishing = {
            choice.get("index", 0): choice["finish_reason"]
            for choice in choices
            if isinstance(choice, dict) and choice.get("finish_reason") is not None
        }
        out = b""
        if self._held is not None:
            # Choices that continue in this chunk did not finish in the held one; the others did.
            continuing = {choice.get("index", 0) for choice in choices if isinstance(choice, dict)}
            finished = {index: reason for index, reason in self._pending_finish.items() if index not in continuing}
            for index in finished:
                del self._pending_finish[index]
            out = sse_event(orjson.dumps(_with_finish(self._held, finished)))
            self._held = None
        if finishing or self._pending_finish:
            # This may be the last chunk: keep it until the next one (or the end) says so.
            self._pending_finish.update(finishing)
            self._held = data
            return out
        if data is chunk.data:
            return out + sse_event(chunk.payload)
        return out + sse_event(orjson.dumps(data))

    def finish(self) -> bytes:
        out = self._read.drain()
        if self._held is not None:
            out += sse_event(orjson.dumps(_with_finish(self._held, self._pending_finish)))
            self._held = None
        if self.include_usage and self._usage_chunk is not None:
            usage_chunk = dict(self._usage_chunk)
            usage_chunk["choices"] = []
            out += sse_event(orjson.dumps(usage_chunk))
        return out + SSE_DONE


def _has_content(choice: Any) -> bool:
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    return isinstance(delta, dict) and bool(delta.get("content") or delta.get("tool_calls"))


def _with_finish(data: dict[str, Any], finish: dict[int, Any]) -> dict[str, Any]:
    out = dict(data)
    out["choices"] = [
        {**choice, "finish_reason": finish.get(choice.get("index", 0))} if isinstance(choice, dict) else choice
        for choice in data.get("choices") or []
    ]
    return out
