"""Per-key token buckets for requests per minute and tokens per minute, in memory.

A bucket holds up to its per-minute limit and refills continuously at limit/60 per
second on the monotonic clock. A request needs one request-token and its estimated
LLM tokens; it is admitted only if both buckets have enough, and then both are
charged, so a refusal costs nothing. A request estimated at more tokens than a
whole minute's limit is admitted once the bucket is full and drives it negative
(the debt is paid back before the next one), rather than being refused forever.
``Retry-After`` is the exact time until the refill covers the shortfall, rounded up
to whole seconds.

With ``redis_url`` the buckets of several replicas are shared through Redis
(:mod:`runinfra_gateway.limits.redis_sync`): admission stays in memory and the
replicas converge within one sync interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from runinfra_gateway import errors
from runinfra_gateway.limits.redis_sync import RedisBucketSync

__all__ = ["RateLimiter"]


class _Bucket:
    __slots__ = ("capacity", "level", "updated")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self.updated = now

    def refill(self, capacity: int, now: float) -> None:
        if capacity != self.capacity:  # the key's limit changed: keep what was spent, move the ceiling
            self.level = min(self.level, float(capacity))
            self.capacity = capacity
        elapsed = now - self.updated
        if elapsed > 0:
            self.level = min(float(capacity), self.level + elapsed * capacity / 60.0)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it already is)."""
        shortfall = amount - self.level
        return shortfall * 60.0 / self.capacity if shortfall > 0 else 0.0


class RateLimiter:
    """Admit or refuse (429 with Retry-After) a key's request against its per-minute limits."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        redis_sync_interval_seconds: float = 0.05,
    ) -> None:
        self._clock = clock
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        self._shared: RedisBucketSync | None = None
        if redis_url is not None:
            if clock is not time.monotonic:
                raise ValueError("redis_url: shared limits run on the monotonic clock")
            if not redis_url.startswith(("redis://", "rediss://", "unix://")):
                # The URL may carry a password: never echo it.
                raise ValueError("redis_url must start with redis://, rediss:// or unix://")
            self._shared = RedisBucketSync(
                redis_url, {"requests": self._requests, "tokens": self._tokens}, interval=redis_sync_interval_seconds
            )

    async def close(self) -> None:
        """Report the last consumption to Redis and close the connection (no-op without Redis)."""
        if self._shared is not None:
            await self._shared.close()

    def admit(
        self,
        key_id: str,
        *,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        estimated_tokens: int,
    ) -> None:
        """Take one request and ``estimated_tokens`` from the key's buckets, or raise ``rate_limited``."""
        if estimated_tokens < 0:
            raise ValueError("estimated_tokens must not be negative")
        now = self._clock()
        requests = self._bucket(self._requests, key_id, requests_per_minute, now)
        tokens = self._bucket(self._tokens, key_id, tokens_per_minute, now)
        wait = 0.0
        limit = ""
        if requests_per_minute is not None and requests is not None:
            wait = requests.wait_for(1)
            limit = f"{requests_per_minute} requests per minute"
        if tokens_per_minute is not None and tokens is not None:
            token_wait = tokens.wait_for(min(estimated_tokens, tokens.capacity))
            if token_wait > wait:
                wait, limit = token_wait, f"{tokens_per_minute} tokens per minute"
        if wait > 0:
            raise errors.rate_limited(math.ceil(wait), f"Rate limit exceeded for this key ({limit}).")
        if requests is not None:
            requests.level -= 1
        if tokens is not None:
            tokens.level -= estimated_tokens
        if self._shared is not None:
            if requests is not None:
                self._shared.took("requests", key_id, 1)
            if tokens is not None:
                self._shared.took("tokens", key_id, estimated_tokens)

    def record_tokens(self, key_id: str, *, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the call reports its real usage (refund or extra debit)."""
        bucket = self._tokens.get(key_id)
        if bucket is None:
            return
        bucket.level = min(float(bucket.capacity), bucket.level + estimated_tokens - actual_tokens)
        if self._shared is not None:
            self._shared.took("tokens", key_id, actual_tokens - estimated_tokens)

    def _bucket(self, buckets: dict[str, _Bucket], key_id: str, limit: int | None, now: float) -> _Bucket | None:
        if limit is None:
            buckets.pop(key_id, None)
            return None
        if limit <= 0:
            # A zero limit blocks the key; the wait is a full minute (the earliest a limit change could matter).
            raise errors.rate_limited(60, "Rate limit exceeded for this key (its limit is zero).")
        bucket = buckets.get(key_id)
        if bucket is None:
            bucket = buckets[key_id] = _Bucket(limit, now)
        else:
            bucket.refill(limit, now)
        return bucket
