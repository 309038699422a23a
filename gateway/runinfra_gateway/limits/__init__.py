"""Rate limits: per-key requests-per-minute and tokens-per-minute token buckets.

In memory, on the monotonic clock, for one gateway process. Several replicas would
share the buckets in Redis (one Lua script doing refill-check-take atomically per
key); that backend is not built, and ``redis_url`` is refused rather than ignored.
"""

from runinfra_gateway.limits.buckets import RateLimiter

__all__ = ["RateLimiter"]
