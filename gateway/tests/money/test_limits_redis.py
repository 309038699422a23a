"""Rate limits shared by several replicas through a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.limits import RateLimiter
from runinfra_gateway.testing import free_port, redis_server


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def admit(limiter: RateLimiter, key: str, *, rpm: int | None = None, tpm: int | None = None, tokens: int = 0) -> None:
    limiter.admit(key, requests_per_minute=rpm, tokens_per_minute=tpm, estimated_tokens=tokens)


def test_two_replicas_share_one_requests_per_minute_limit(redis_url: str) -> None:
    async def scenario() -> tuple[int, str]:
        first = RateLimiter(redis_url=redis_url, redis_sync_interval_seconds=0.02)
        second = RateLimiter(redis_url=redis_url, redis_sync_interval_seconds=0.02)
        for _ in range(4):
            admit(first, "key_shared", rpm=6)
        admit(second, "key_shared", rpm=6)
        await asyncio.sleep(0.2)  # a few sync intervals
        admit(second, "key_shared", rpm=6)  # 6 of 6 used between the two replicas
        await asyncio.sleep(0.2)
        refusals = 0
        retry_after = ""
        for limiter in (first, second):
            try:
                admit(limiter, "key_shared", rpm=6)
            except GatewayError as error:
                refusals += 1
                retry_after = error.headers["retry-after"]
        await first.close()
        await second.close()
        return refusals, retry_after

    refusals, retry_after = asyncio.run(scenario())
    assert refusals == 2, "each replica sees what the other took"
    assert 1 <= int(retry_after) <= 10  # a request refills every 10 s; some has refilled meanwhile


def test_token_corrections_are_shared_too(redis_url: str) -> None:
    async def scenario() -> None:
        first = RateLimiter(redis_url=redis_url, redis_sync_interval_seconds=0.02)
        second = RateLimiter(redis_url=redis_url, redis_sync_interval_seconds=0.02)
        admit(first, "key_tokens", tpm=600, tokens=600)
        admit(second, "key_tokens", tpm=600, tokens=0)  # starts syncing this key on the second replica
        await asyncio.sleep(0.2)
        with pytest.raises(GatewayError) as refused:
            admit(second, "key_tokens", tpm=600, tokens=300)
        assert int(refused.value.headers["retry-after"]) in range(29, 31)
        first.record_tokens("key_tokens", estimated_tokens=600, actual_tokens=100)  # 500 come back
        await asyncio.sleep(0.2)
        admit(second, "key_tokens", tpm=600, tokens=300)
        await first.close()
        await second.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("field", "poison"), [("level", "-inf"), ("level", "-1e999"), ("level", "nan"), ("at", "nan")])
def test_a_stored_value_that_is_not_a_finite_number_starts_the_bucket_afresh(
    redis_url: str, field: str, poison: str
) -> None:
    # Redis's Lua reads "nan" and "-inf" as numbers. A level of -inf used to stay -inf (the refill cannot lift
    # it) and refuse the key for good, each refusal a 500 (a Retry-After of infinity); a NaN clock reset the
    # shared level to full. Whoever can write to Redis can still delete the key, but not break the limiter.
    key_id = f"key_poisoned_{field}_{poison}"
    shared = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = shared.time()
        stored = {"level": "1", "at": str(seconds + micros / 1e6), field: poison}
        shared.hset(f"runinfra:ratelimit:requests:{key_id}", mapping=stored)

        async def scenario() -> GatewayError:
            limiter = RateLimiter(redis_url=redis_url, redis_sync_interval_seconds=0.01)
            admit(limiter, key_id, rpm=3)
            await asyncio.sleep(0.2)  # many syncs with the stored values
            admit(limiter, key_id, rpm=3)
            admit(limiter, key_id, rpm=3)
            await asyncio.sleep(0.2)
            with pytest.raises(GatewayError) as refused:
                admit(limiter, key_id, rpm=3)
            await limiter.close()
            return refused.value

        refusal = asyncio.run(scenario())
        assert refusal.status == 429
        assert 1 <= int(refusal.headers["retry-after"]) <= 20
        assert float(shared.hget(f"runinfra:ratelimit:requests:{key_id}", "level") or b"nan") < 1
    finally:
        shared.close()


def test_unreachable_redis_falls_back_to_local_limits() -> None:
    async def scenario() -> None:
        limiter = RateLimiter(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_sync_interval_seconds=0.01)
        for _ in range(3):
            admit(limiter, "key_alone", rpm=3)
        await asyncio.sleep(0.1)  # sync attempts fail; nothing raises into the request path
        with pytest.raises(GatewayError) as refused:
            admit(limiter, "key_alone", rpm=3)
        assert refused.value.headers["retry-after"] == "20"
        await limiter.close()

    asyncio.run(scenario())


def test_bad_redis_urls_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="redis_url") as bad:
        RateLimiter(redis_url="http://:s3cret@127.0.0.1:6379")
    assert "s3cret" not in str(bad.value)
