"""Shaping what the gateway sends: SSE framing, chat stream usage/finish rules, the Responses adapter."""

from runinfra_gateway.shaping.chat_stream import ChatStreamShaper, is_usage_chunk
from runinfra_gateway.shaping.responses import chat_to_response, responses_to_chat
from runinfra_gateway.shaping.responses_stream import ResponsesStreamAdapter
from runinfra_gateway.shaping.sse import SSE_DONE, sse_error, sse_event, sse_named_event

__all__ = [
    "SSE_DONE",
    "ChatStreamShaper",
    "ResponsesStreamAdapter",
    "chat_to_response",
    "is_usage_chunk",
    "responses_to_chat",
    "sse_error",
    "sse_event",
    "sse_named_event",
]
