"""The Responses adapter for streams: chat chunks in, Responses events out.

The event sequence is OpenAI's: ``response.created``, ``response.in_progress``,
the output item and content part being opened, one ``response.output_text.delta``
per text delta, the item and part being closed, and last ``response.completed``
carrying the final response (``status: "incomplete"`` with
``incomplete_details.reason`` when ``max_output_tokens`` cut it short). Each
event is an SSE frame with an ``event:`` line naming its ``type``.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Mapping

import orjson

from runinfra_gateway.backends.base import ChatChunk
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.shaping._read_batch import ReadBatch
from runinfra_gateway.shaping.responses import new_response_id, output_message, response_envelope
from runinfra_gateway.shaping.sse import sse_named_event

__all__ = ["ResponsesStreamAdapter"]


class ResponsesStreamAdapter:
    """One stream's state: call :meth:`start`, :meth:`feed` for each chunk, then :meth:`finish`."""

    def __init__(self, request_body: Mapping[str, Any], *, response_id: str | None = None) -> None:
        self._request = request_body
        self.response_id = response_id or new_response_id()
        self._item_id = "msg_" + secrets.token_hex(12)
        self._created_at = int(time.time())
        self._sequence = 0
        self._texts: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}
        self._finish_reason: Any = None
        #: The engine's chat usage (``prompt_tokens``, ``completion_tokens``), once seen.
        self.usage: dict[str, Any] | None = None
        #: Text deltas delivered so far (≈ output tokens, for a stream cut short).
        self.content_chunks = 0
        #: The final response object, set by :meth:`finish`.
        self.response: dict[str, Any] | None = None
        self._read = ReadBatch()

    def _event(self, type: str, fields: dict[str, Any]) -> bytes:
        payload = {"type": type, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return sse_named_event(type, orjson.dumps(payload))

    def _snapshot(self, status: str, output: list[dict[str, Any]], usage: Mapping[str, Any] | None) -> dict[str, Any]:
        return response_envelope(
            self._request,
            response_id=self.response_id,
            created_at=self._created_at,
            finish_reason=self._finish_reason,
            output=output,
            output_text="".join(self._texts),
            usage=usage,
            status=status,
        )

    def start(self) -> bytes:
        """The events that open the stream, before any chunk."""
        snapshot = self._snapshot("in_progress", [], None)
        return b"".join((
            self._event("response.created", {"response": snapshot}),
            self._event("response.in_progress", {"response": snapshot}),
            self._event("response.output_item.added", {
                "output_index": 0,
                "item": {"id": self._item_id, "type": "message", "status": "in_progress", "role": "assistant",
                         "content": []},
            }),
            self._event("response.content_part.added", {
                "item_id": self._item_id, "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            }),
        ))

    def feed(self, chunk: ChatChunk) -> bytes:
        """Delta events for one chat chunk (empty bytes for a chunk without text).

        As with :class:`~runinfra_gateway.shaping.ChatStreamShaper`, the events of a chunk flagged
        ``more_ready`` are sent with the last chunk of its network read.
        """
        return self._read.add(chunk, self._events_for(chunk))

    def _events_for(self, chunk: ChatChunk) -> bytes:
        data = chunk.data
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        out = b""
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason") is not None:
                self._finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            self._collect_tool_calls(delta.get("tool_calls"))
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._texts.append(text)
                self.content_chunks += 1
                out += self._event("response.output_text.delta", {
                    "item_id": self._item_id, "output_index": 0, "content_index": 0, "delta": text, "logprobs": [],
                })
        return out

    def _collect_tool_calls(self, calls: Any) -> None:
        for call in calls or ():
            if not isinstance(call, dict):
                continue
            slot = self._tool_calls.setdefault(int(call.get("index", 0)), {"id": None, "name": "", "arguments": ""})
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""

    def finish(self) -> bytes:
        """The closing events, ending with ``response.completed`` carrying the final response."""
        unsent = self._read.drain()
        text = "".join(self._texts)
        message = output_message(text, status="completed", message_id=self._item_id)
        part = message["content"][0]
        output = [message]
        for slot in self._tool_calls.values():
            output.append({
                "type": "function_call", "id": "fc_" + secrets.token_hex(12), "call_id": slot["id"],
                "name": slot["name"], "arguments": slot["arguments"], "status": "completed",
            })
        status = "incomplete" if self._finish_reason == "length" else "completed"
        self.response = self._snapshot(status, output, self.usage or {})
        where = {"item_id": self._item_id, "output_index": 0, "content_index": 0}
        events = [
            unsent,
            self._event("response.output_text.done", {**where, "text": text, "logprobs": []}),
            self._event("response.content_part.done", {**where, "part": part}),
            self._event("response.output_item.done", {"output_index": 0, "item": message}),
        ]
        events.extend(
            self._event("response.output_item.done", {"output_index": index, "item": item})
            for index, item in enumerate(output[1:], start=1)
        )
        events.append(self._event("response.completed", {"response": self.response}))
        return b"".join(events)

    def error(self, error: GatewayError) -> bytes:
        """An ``error`` event for a failure after the stream has started."""
        return self._event("error", {"code": error.code or error.type, "message": error.message, "param": error.param})
