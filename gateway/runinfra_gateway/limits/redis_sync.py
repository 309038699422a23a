"""Sharing the rate-limit buckets of several gateway replicas through Redis.

``admit`` must stay a memory operation (it runs on the event loop for every
request), so replicas do not ask Redis per request. Each replica admits against
its local buckets and notes what it took; a background task sends those amounts
to Redis every ``interval`` seconds, where one Lua script per bucket refills the
shared level on Redis's clock, subtracts what every replica reported, and returns
it. The replica then sets its local level to the shared one (less what it took
since the report). Replicas therefore agree within one interval: the shared limit
can be overrun by at most what the other replicas admit in that interval, and
``Retry-After`` is computed from the shared level once it is known. A replica that
has not seen a key for two minutes starts it from a full local bucket and learns
the shared level at its next sync, so its first interval's admissions can overrun
too.

If Redis is unreachable, each replica keeps limiting on its own buckets and
retries; nothing it took is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from runinfra_gateway.limits.buckets import _Bucket

__all__ = ["RedisBucketSync"]

logger = logging.getLogger("runinfra_gateway.limits")

# KEYS[1]: the bucket's hash. ARGV: capacity per minute, amount taken since the last report.
# Returns the shared level as a string (Lua numbers would be truncated to integers). A stored value that is
# not a finite number ("nan" and "-inf" parse in Redis's Lua) starts the bucket afresh: kept, a NaN level
# would lift the limit for good and an infinite one would refuse the key for good.
_SHARED_BUCKET = """
local function finite(x)
  return x ~= nil and x == x and x ~= math.huge and x ~= -math.huge
end
local capacity = tonumber(ARGV[1])
local taken = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stored = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(stored[1])
local at = tonumber(stored[2])
if not finite(level) or not finite(at) then
  level = capacity
  at = now
end
if level > capacity then level = capacity end
if now > at then
  level = math.min(capacity, level + (now - at) * capacity / 60)
end
level = level - taken
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 300)
return tostring(level)
"""

_ACTIVE_SECONDS = 120.0  # keep syncing a key this long after its last local request
_EXCHANGE_TIMEOUT_SECONDS = 3.0  # one Redis round trip, socket timeouts included, never takes longer


def _finite_number(reply: Any) -> float | None:
    try:
        value = float(reply)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class RedisBucketSync:
    """Reports local consumption to Redis and pulls the shared levels back, in the background."""

    def __init__(self, url: str, buckets: dict[str, dict[str, _Bucket]], *, interval: float = 0.05) -> None:
        self._client: Any = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._script: Any = self._client.register_script(_SHARED_BUCKET)
        self._buckets = buckets
        self._interval = interval
        self._taken: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._seen: dict[tuple[str, str], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._closing = False

    def took(self, kind: str, key_id: str, amount: float) -> None:
        """Note what a local admit took (negative: what a correction gave back)."""
        self._taken[(kind, key_id)] += amount
        self._seen[(kind, key_id)] = time.monotonic()
        if self._task is None and not self._closing:
            with contextlib.suppress(RuntimeError):  # no running loop: a synchronous caller, nothing to share
                self._task = asyncio.get_running_loop().create_task(self._run(), name="runinfra-ratelimit-sync")

    async def sync(self) -> None:
        """One exchange with Redis: report what was taken, adopt the shared levels."""
        now = time.monotonic()
        for name in [name for name, seen in self._seen.items() if now - seen > _ACTIVE_SECONDS]:
            del self._seen[name]
        reported, self._taken = self._taken, defaultdict(float)
        names = [name for name in self._seen if name[1] in self._buckets[name[0]]]
        if not names:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for kind, key_id in names:
                    bucket = self._buckets[kind][key_id]
                    await self._script(
                        keys=[f"runinfra:ratelimit:{kind}:{key_id}"],
                        args=[bucket.capacity, repr(reported.get((kind, key_id), 0.0))],
                        client=pipe,
                    )
                levels = await pipe.execute()
        except (asyncio.CancelledError, RedisError, OSError) as error:
            for name, amount in reported.items():  # keep them for the next try
                self._taken[name] += amount
            if isinstance(error, asyncio.CancelledError):
                raise
            if not self._failing:
                logger.warning("rate limits: Redis unreachable; limiting per replica until it is back")
            self._failing = True
            return
        if self._failing:
            logger.info("rate limits: Redis reachable again; limits are shared")
        self._failing = False
        now = time.monotonic()
        for (kind, key_id), reply in zip(names, levels, strict=True):
            local = self._buckets[kind].get(key_id)
            level = _finite_number(reply)
            if local is None or level is None:  # a reply that is no level (not our script's) changes nothing
                continue
            since_report = self._taken.get((kind, key_id), 0.0)
            local.level = min(float(local.capacity), level - since_report)
            local.updated = now

    async def _run(self) -> None:
        while not self._closing:
            await asyncio.sleep(self._interval)
            if not self._closing:
                await self._bounded_sync()

    async def _bounded_sync(self) -> None:
        # An exchange that never answers (a half-open connection, a stuck server)
        # must neither stall later syncs nor hang shutdown; what it was reporting
        # is kept for the next exchange (see sync).
        try:
            await asyncio.wait_for(self.sync(), timeout=_EXCHANGE_TIMEOUT_SECONDS)
        except asyncio.TimeoutError:
            if not self._failing:
                logger.warning("rate limits: Redis did not answer in time; limiting per replica until it does")
            self._failing = True

    async def close(self) -> None:
        # The flag ends the loop even if the cancel below is lost: Python 3.11's wait_for returns the
        # inner result when the cancel lands just as the exchange finishes (the redis client can also
        # absorb one while it backs off), and awaiting the task would then wait forever.
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._bounded_sync()
        with contextlib.suppress(asyncio.TimeoutError, RedisError, OSError):
            await asyncio.wait_for(self._client.aclose(), timeout=_EXCHANGE_TIMEOUT_SECONDS)
