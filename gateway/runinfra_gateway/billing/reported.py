"""Numbers an engine reports about its own work (token counts, audio seconds), taken only when plausible.

An upstream engine is a peer the gateway does not control. A usage block with a negative count, a
string, a bool, or a number no request could reach would otherwise flow into the charge, where a
negative count is refused and an overflow fails settlement after the work is done. Callers fall back
to their own estimate (as for an engine that reports nothing) when these return None.
"""

from __future__ import annotations

from typing import Any

from runinfra_gateway.real_numbers import is_number

__all__ = ["MAX_REPORTED_COUNT", "MAX_REPORTED_SECONDS", "reported_count", "reported_seconds", "reported_tokens"]

#: Also the bound of the request log's token columns (32-bit INTEGER on PostgreSQL).
MAX_REPORTED_COUNT = 2**31 - 1
#: A week of audio: far beyond any upload the gateway accepts.
MAX_REPORTED_SECONDS = 7 * 86_400.0


def reported_count(value: object) -> int | None:
    """``value`` as a count (tokens, characters) when it is a whole number from 0 to ``MAX_REPORTED_COUNT``."""
    if not is_number(value):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 0 <= value <= MAX_REPORTED_COUNT else None  # NaN fails the comparison


def reported_seconds(value: object) -> float | None:
    """``value`` as a duration when it is a number of seconds from 0 to ``MAX_REPORTED_SECONDS``."""
    if not is_number(value):
        return None
    return float(value) if 0 <= value <= MAX_REPORTED_SECONDS else None


def reported_tokens(usage: Any) -> tuple[int, int] | None:
    """A chat ``usage`` block's (prompt, completion) token counts, when both can be charged as reported."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = reported_count(usage.get("prompt_tokens")), reported_count(usage.get("completion_tokens"))
    return None if prompt is None or completion is None else (prompt, completion)
