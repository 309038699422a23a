"""Admission and money around one backend call: rate limit, idempotency, credit hold, settlement.

The order is the contract's: admit (rate limit), then idempotency (a replay
is served before any hold and is never charged again), then the credit hold
(402 when the balance is short), the work, and settlement at actual usage
before the response is sent. Any failure before the work finished releases
the hold and frees the idempotency key, so nothing is charged and the client
may retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runinfra_gateway.billing import Hold, Usage
from runinfra_gateway.idempotency import StoredResponse
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call

__all__ = [
    "OpenCharge",
    "Reply",
    "admit",
    "begin_idempotent",
    "cancel_charge",
    "estimate_tokens",
    "open_charge",
    "run_charged",
    "settle",
    "usage_tokens",
]


@dataclass(slots=True)
class Reply:
    """What a backend call produced, ready to send."""

    body: bytes
    content_type: bytes
    usage: Usage
    status: int = 200
    cost_microcents: int | None = None  # set when the charge is not one deployment's price of ``usage``


def usage_tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.output_tokens


#: Operations measured in tokens; the others (audio, images) do not draw on the tokens-per-minute bucket.
_TOKEN_OPERATIONS = frozenset({"chat.completions", "responses", "embeddings"})


def estimate_tokens(operation: str, raw_body_length: int, body: Mapping[str, Any]) -> int:
    """A cheap token estimate for the tokens-per-minute bucket (corrected after the call)."""
    if operation not in _TOKEN_OPERATIONS:
        return 0
    limit = body.get("max_tokens") or body.get("max_output_tokens") or body.get("max_completion_tokens") or 0
    if not isinstance(limit, int) or isinstance(limit, bool):
        limit = 0
    return raw_body_length // 4 + max(0, limit)


def admit(state: GatewayState, call: Call, estimated_tokens: int) -> None:
    """Rate limits of the call's key (429 with Retry-After when over)."""
    key = call.key
    assert key is not None
    settings = state.settings
    state.limiter.admit(
        key.id,
        requests_per_minute=key.requests_per_minute or settings.requests_per_minute,
        tokens_per_minute=key.tokens_per_minute or settings.tokens_per_minute,
        estimated_tokens=estimated_tokens,
    )


async def settle(
    state: GatewayState,
    call: Call,
    hold: Hold,
    runtime: DeploymentRuntime,
    operation: str,
    usage: Usage,
    status: int,
    estimated_tokens: int,
    *,
    cost: int | None = None,
) -> int:
    """Charge ``usage`` (or ``cost``) against ``hold``, correct the token bucket, record both on the call.

    Returns what the ledger actually charged: the price, capped so the balance never goes negative.
    """
    key = call.key
    assert key is not None
    if cost is None:
        cost = runtime.prices.charge_microcents(operation, usage)
    charged = await state.ledger.settle(
        hold,
        cost,
        request_id=call.request_id,
        key_id=key.id,
        deployment_id=runtime.id,
        operation=operation,
        usage=usage,
        status=status,
    )
    state.limiter.record_tokens(key.id, estimated_tokens=estimated_tokens, actual_tokens=usage_tokens(usage))
    call.usage = usage
    call.cost_microcents = charged
    return charged


def _fingerprint(call: Call, raw_body: bytes) -> bytes:
    digest = hashlib.sha256(call.method.encode())
    digest.update(b" ")
    digest.update(call.path.encode("utf-8", "surrogateescape"))
    digest.update(b"\n")
    digest.update(raw_body)
    return digest.digest()


async def begin_idempotent(
    state: GatewayState, call: Call, raw_body: bytes, estimated_tokens: int
) -> tuple[str | None, bool]:
    """Take the call's Idempotency-Key (before any hold): ``(key, False)`` to proceed, ``(key, True)`` if replayed.

    A stored response is sent here, uncharged; a key in flight, reused or finished without a stored
    response raises its 409/422. ``(None, False)`` when the request carries no key.
    """
    key = call.key
    assert key is not None
    idempotency_key = call.idempotency_key()
    if idempotency_key is None:
        return None, False
    try:
        stored = await state.idempotency.begin(
            key.id, idempotency_key, _fingerprint(call, raw_body), request_id=call.request_id
        )
    except BaseException:
        state.limiter.record_tokens(key.id, estimated_tokens=estimated_tokens, actual_tokens=0)
        raise
    if stored is None:
        return idempotency_key, False
    state.limiter.record_tokens(key.id, estimated_tokens=estimated_tokens, actual_tokens=0)
    await call.respond_replay(stored.status, stored.headers, stored.body)
    return idempotency_key, True


@dataclass(slots=True)
class OpenCharge:
    """An admitted call whose credits are held: what settling or giving them back needs."""

    hold: Hold
    idempotency_key: str | None
    estimated_tokens: int


async def open_charge(
    state: GatewayState,
    call: Call,
    runtime: DeploymentRuntime,
    operation: str,
    estimate_body: Mapping[str, Any],
    raw_body: bytes,
    *,
    hold_microcents: int | None = None,
) -> OpenCharge | None:
    """Admit (rate limits), take the Idempotency-Key, hold the credits; None when a stored response was replayed.

    A refused hold frees the key and gives the estimated tokens back before the error propagates.
    """
    key = call.key
    assert key is not None
    estimated = estimate_tokens(operation, len(raw_body), estimate_body)
    admit(state, call, estimated)
    idempotency_key, replayed = await begin_idempotent(state, call, raw_body, estimated)
    if replayed:
        return None
    try:
        amount = runtime.prices.estimate_microcents(operation, estimate_body) if hold_microcents is None \
            else hold_microcents
        hold = await state.ledger.hold(key.workspace_id, amount, request_id=call.request_id)
    except BaseException:
        await _give_back_admission(state, key.id, idempotency_key, estimated)
        raise
    return OpenCharge(hold, idempotency_key, estimated)


async def cancel_charge(state: GatewayState, call: Call, charge: OpenCharge) -> None:
    """The work failed, or the client left before a result existed: nothing is charged and the key is free."""
    key = call.key
    assert key is not None
    call.stop_watching()
    await state.ledger.release(charge.hold)
    await _give_back_admission(state, key.id, charge.idempotency_key, charge.estimated_tokens)


async def _give_back_admission(
    state: GatewayState, key_id: str, idempotency_key: str | None, estimated_tokens: int
) -> None:
    """Undo admission for a call that will not run: free its Idempotency-Key, return its estimated tokens."""
    if idempotency_key is not None:
        await state.idempotency.abandon(key_id, idempotency_key)
    state.limiter.record_tokens(key_id, estimated_tokens=estimated_tokens, actual_tokens=0)


async def run_charged(
    state: GatewayState,
    call: Call,
    runtime: DeploymentRuntime,
    operation: str,
    estimate_body: Mapping[str, Any],
    raw_body: bytes,
    work: Callable[[], Awaitable[Reply]],
    *,
    hold_microcents: int | None = None,
) -> None:
    """Run ``work`` under a hold and send its reply with the exact charge (or replay a stored one)."""
    key = call.key
    assert key is not None
    charge = await open_charge(state, call, runtime, operation, estimate_body, raw_body,
                               hold_microcents=hold_microcents)
    if charge is None:
        return
    try:
        reply = await work()
        # Priced before the result counts as delivered: usage that cannot be priced gives the hold back.
        price = reply.cost_microcents
        if price is None:
            price = runtime.prices.charge_microcents(operation, reply.usage)
    except BaseException:
        await cancel_charge(state, call, charge)
        raise
    # The result exists: from here on a disconnect changes nothing (it is charged and, if keyed, replayable).
    call.stop_watching()
    cost = await settle(state, call, charge.hold, runtime, operation, reply.usage, reply.status,
                        charge.estimated_tokens, cost=price)
    headers = [(b"x-runinfra-cost-microcents", str(cost).encode())]
    if charge.idempotency_key is not None:
        stored_headers = (
            ("content-type", reply.content_type.decode("latin-1")),
            ("x-runinfra-cost-microcents", str(cost)),
        )
        await state.idempotency.complete(
            key.id, charge.idempotency_key,
            StoredResponse(status=reply.status, headers=stored_headers, body=reply.body),
        )
    await call.respond(reply.status, reply.body, reply.content_type, headers)
