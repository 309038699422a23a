"""Server-sent events framing for what the gateway sends to its clients.

Payloads are JSON bytes already (an upstream chunk passed through untouched,
or one the gateway built), so framing is a concatenation, never a re-encode.
"""

from __future__ import annotations

import orjson

from runinfra_gateway.errors import GatewayError

__all__ = ["SSE_DONE", "sse_error", "sse_event", "sse_named_event"]

#: The terminator OpenAI chat streams end with.
SSE_DONE = b"data: [DONE]\n\n"


def sse_event(payload: bytes) -> bytes:
    """``data: <payload>\\n\\n`` for a single-line JSON payload."""
    return b"data: " + payload + b"\n\n"


def sse_named_event(event: str, payload: bytes) -> bytes:
    """An event with an ``event:`` line, as the Responses stream sends them."""
    return b"event: " + event.encode("ascii") + b"\ndata: " + payload + b"\n\n"


def sse_error(error: GatewayError) -> bytes:
    """The error envelope as a data event, for a failure after the stream has started."""
    return sse_event(orjson.dumps(error.body()))
