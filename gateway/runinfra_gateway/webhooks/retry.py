"""When a failed delivery is tried again: the schedule, its jitter and ``Retry-After``.

Pure functions over :class:`WebhookSettings`, so the policy is testable without
a socket. ``retry_schedule[n]`` is the delay before attempt ``n + 1``; its
length is the number of attempts.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime

from runinfra_gateway.webhooks.settings import WebhookSettings

__all__ = ["next_attempt_delay", "parse_retry_after"]


def next_attempt_delay(
    attempts_made: int, settings: WebhookSettings, *, retry_after: float | None = None, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones; ``None``: give up.

    The receiver's ``Retry-After`` is honoured as a floor (never earlier than it
    asked), capped at ``max_retry_after_seconds``.
    """
    if attempts_made >= settings.max_attempts:
        return None
    base = settings.retry_schedule[attempts_made]
    delay = base + (rng or random).uniform(0, base * settings.jitter_fraction)
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_retry_after_seconds))
    return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²", which float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
