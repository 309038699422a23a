"""The event types the gateway sends and the JSON body every delivery carries."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["EVENT_TYPES", "WILDCARD", "event_body", "new_id", "validate_event_filter"]

EVENT_TYPES: tuple[str, ...] = (
    "credits.low",
    "credits.depleted",
    "deployment.verified",
    "deployment.failed",
    "key.created",
    "key.revoked",
    "usage.daily",
    "webhook.test",
)
WILDCARD = "*"


def new_id(prefix: str) -> str:
    """A random identifier such as ``evt_…`` (96 bits, hex)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def event_body(*, event_id: str, type: str, created: int, workspace_id: str, data: Mapping[str, Any]) -> bytes:
    """``{id, type, created, workspace, data}`` as the exact bytes every delivery sends."""
    try:
        return orjson.dumps(
            {"id": event_id, "type": type, "created": created, "workspace": workspace_id, "data": dict(data)}
        )
    except TypeError as exc:
        raise ValueError(f"webhook event data is not JSON-serializable: {exc}") from None


def validate_event_filter(types: object) -> list[str]:
    """A list of known event types, or ``["*"]`` for all; anything else is refused by name."""
    if types is None:
        return [WILDCARD]
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ValueError('events must be a non-empty list of event types (or ["*"])')
    if WILDCARD in types:
        return [WILDCARD]
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(types))
