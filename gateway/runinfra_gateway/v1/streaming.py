"""Relaying a chat stream as SSE: hold before, settle after, stop the backend when the client leaves.

The first chunk is awaited before any header is sent, so a deployment that
fails up front still gets a proper JSON error status. After that, a failure
becomes an error event and the stream ends; a client disconnect cancels this
task, which closes the backend iterator (the upstream connection, or the
embedded generation). Either way the charge is for what was delivered: the
engine's usage when it reported one, else the prompt estimate plus one token
per content delta sent.

An Idempotency-Key is taken before the hold, like any charged call's. A stream
is never stored for replay: once it started (and so is charged), the key is
recorded as finished and a repeat gets 409 ``idempotency_replay_unavailable``
(``idempotency_key_in_use`` while it still runs); it is never run or charged
twice. A stream that failed before its first byte frees the key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from runinfra_gateway import errors
from runinfra_gateway.backends.base import ChatChunk
from runinfra_gateway.billing import Usage, reported_tokens
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.shaping import sse_error
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.charging import cancel_charge, open_charge, settle

__all__ = ["StreamShaper", "relay_stream"]

_SSE_HEADERS = (
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
)


class StreamShaper(Protocol):
    usage: dict[str, Any] | None
    content_chunks: int

    def feed(self, chunk: ChatChunk) -> bytes: ...

    def finish(self) -> bytes: ...


def _delivered_usage(shaper: StreamShaper, prompt_estimate: int) -> Usage:
    counts = reported_tokens(shaper.usage)
    if counts is not None:
        return Usage(input_tokens=counts[0], output_tokens=counts[1])
    # None reported (or none chargeable, from a stream cut before the estimate): what was delivered.
    return Usage(input_tokens=prompt_estimate, output_tokens=shaper.content_chunks)


async def relay_stream(
    state: GatewayState,
    call: Call,
    runtime: DeploymentRuntime,
    operation: str,
    chat_body: Mapping[str, Any],
    estimate_body: Mapping[str, Any],
    raw_body: bytes,
    shaper: StreamShaper,
    *,
    opening: bytes = b"",
    error_event: Any = sse_error,
) -> None:
    key = call.key
    assert key is not None
    assert runtime.backend is not None
    call.stream = True
    charge = await open_charge(state, call, runtime, operation, estimate_body, raw_body)
    if charge is None:
        return
    prompt_estimate = max(1, len(raw_body) // 4)
    iterator: AsyncIterator[ChatChunk] = runtime.backend.chat_stream(chat_body)
    first: ChatChunk | None = None
    try:
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first = None
    except BaseException:
        call.stop_watching()  # before the awaits below: a disconnect now must not cut the clean-up short
        await _close(iterator)
        await cancel_charge(state, call, charge)
        raise

    status = 200
    try:
        await call.start(200, list(_SSE_HEADERS))
        head = opening + (shaper.feed(first) if first is not None else b"")
        if head:
            await call.body_part(head)
        async for chunk in iterator:
            out = shaper.feed(chunk)
            if out:
                await call.body_part(out)
        call.stop_watching()
        await call.body_part(shaper.finish(), more=False)
    except asyncio.CancelledError:
        if not call.disconnected:
            raise
        status = 499  # the client closed the connection; the generation is stopped below
    except errors.GatewayError as exc:
        call.stop_watching()
        call.error_type = exc.type
        status = exc.status
        await call.body_part(error_event(exc), more=False)
    finally:
        call.stop_watching()
        await _close(iterator)
        try:
            await settle(state, call, charge.hold, runtime, operation, _delivered_usage(shaper, prompt_estimate),
                         status, charge.estimated_tokens)
        finally:
            # The stream started: whatever it delivered is charged, so the key never runs it again.
            if charge.idempotency_key is not None:
                await state.idempotency.complete_without_replay(key.id, charge.idempotency_key, status)
        call.status = status


async def _close(iterator: AsyncIterator[ChatChunk]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):  # the stream is over either way; closing is best effort
            await close()
