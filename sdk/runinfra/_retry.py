"""The retry policy as a value object (after urllib3's ``Retry``): testable without a socket.

Which requests may be retried at all (``replay_safe``) is decided by the caller from the
operation: GETs, and POSTs to replay-safe operations that carry an idempotency key.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Optional


__all__ = ["MAX_RETRY_AFTER_SECONDS", "RETRYABLE_STATUSES", "Retry", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
# Conflicts a retry cannot resolve: the original finished but cannot be replayed, or the
# key was reused with a different body.
NON_RETRYABLE_TYPES = frozenset({"idempotency_replay_unavailable", "idempotency_key_reused"})
MAX_RETRY_AFTER_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 8.0

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}


def parse_retry_after(value: Optional[str], *, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: an integer or an IMF-fixdate HTTP-date.

    Returns None when absent, malformed, negative, or above 60 seconds (not reasonable to
    honour; the caller falls back to exponential backoff). A date in the past is 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        seconds = float(int(text))
    else:
        moment = _parse_http_date(text)
        if moment is None:
            return None
        seconds = max(0.0, moment - (time.time() if now is None else now))
    if seconds > MAX_RETRY_AFTER_SECONDS:
        return None
    return seconds


def _parse_http_date(text: str) -> Optional[float]:
    # IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"): what RFC 9110 senders must use.
    import calendar

    parts = text.split(" ")
    if len(parts) != 6 or parts[5] != "GMT" or not parts[0].endswith(","):
        return None
    day, month_name, year, clock = parts[1], parts[2], parts[3], parts[4]
    month = _MONTHS.get(month_name)
    hms = clock.split(":")
    numbers = [day, year, *hms]
    if month is None or len(hms) != 3 or not all(n.isdigit() and n.isascii() for n in numbers):
        return None
    fields = (int(year), month, int(day), int(hms[0]), int(hms[1]), int(hms[2]))
    if not 1 <= fields[0] <= 9999:
        return None
    if not (1 <= fields[2] <= calendar.monthrange(fields[0], month)[1] and fields[3] < 24 and fields[4] < 60):
        return None
    if fields[5] > 60:
        return None
    return float(calendar.timegm((*fields, 0, 0, 0)))


class Retry:
    """How many retries remain and how long to wait before the next one."""

    __slots__ = ("backoff_base_seconds", "retries_done", "total")

    def __init__(self, total: int, backoff_base_seconds: float, retries_done: int = 0) -> None:
        self.total = total
        self.backoff_base_seconds = backoff_base_seconds
        self.retries_done = retries_done

    def __repr__(self) -> str:
        return f"Retry(total={self.total}, backoff_base_seconds={self.backoff_base_seconds}, done={self.retries_done})"

    @property
    def exhausted(self) -> bool:
        return self.retries_done >= self.total

    def is_retry(self, replay_safe: bool, status: int, error_type: Optional[str] = None) -> bool:
        """Whether a response with ``status`` (and gateway error ``type``) should be retried."""
        if not replay_safe or self.exhausted:
            return False
        return status in RETRYABLE_STATUSES and error_type not in NON_RETRYABLE_TYPES

    def is_retry_after_transport_error(self, replay_safe: bool, transient: bool = True) -> bool:
        """Transient connection failures and timeouts are retried when replay is safe."""
        return transient and replay_safe and not self.exhausted

    def get_backoff_time(self) -> float:
        """Bounded exponential backoff: base, 2 * base, 4 * base, … capped at 8 seconds."""
        if self.backoff_base_seconds <= 0:
            return 0.0
        return float(min(MAX_BACKOFF_SECONDS, self.backoff_base_seconds * (2**self.retries_done)))

    def sleep_seconds(self, retry_after: Optional[str]) -> float:
        """Retry-After when reasonable (≤ 60 s), else the backoff."""
        parsed = parse_retry_after(retry_after)
        return self.get_backoff_time() if parsed is None else parsed

    def increment(self) -> Retry:
        """A new ``Retry`` with one more retry used."""
        return Retry(self.total, self.backoff_base_seconds, self.retries_done + 1)
