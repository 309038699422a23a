"""Rate limits: per-key requests-per-minute and tokens-per-minute token buckets.

In memory, on the monotonic clock; with ``redis_url``, several gateway replicas share
their buckets through Redis (synchronised in the background, never per request).
"""

from runinfra_gateway.limits.buckets import RateLimiter

__all__ = ["RateLimiter"]
