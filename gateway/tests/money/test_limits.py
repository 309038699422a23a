"""Rate limits: token buckets per key, 429 with an accurate Retry-After, token corrections."""

from __future__ import annotations

import time

import pytest
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.limits import RateLimiter


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(
    limiter: RateLimiter,
    *,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    estimated_tokens: int = 0,
) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        limiter.admit(
            "key_1",
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            estimated_tokens=estimated_tokens,
        )
    assert caught.value.status == 429
    assert caught.value.type == "rate_limit_error"
    return caught.value


def test_requests_per_minute_and_retry_after() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(6):
        limiter.admit("key_1", requests_per_minute=6, tokens_per_minute=None, estimated_tokens=0)
    error = refused(limiter, requests_per_minute=6)
    assert error.headers["retry-after"] == "10"  # one request refills every 60 / 6 = 10 s
    assert "6 requests per minute" in error.message
    clock.now += 9.9
    assert refused(limiter, requests_per_minute=6).headers["retry-after"] == "1"  # 0.1 s left rounds up
    clock.now += 0.1
    limiter.admit("key_1", requests_per_minute=6, tokens_per_minute=None, estimated_tokens=0)
    # Another key has its own buckets.
    limiter.admit("key_2", requests_per_minute=6, tokens_per_minute=None, estimated_tokens=0)


def test_tokens_per_minute_retry_after_and_correction() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=600, estimated_tokens=500)
    error = refused(limiter, tokens_per_minute=600, estimated_tokens=300)
    assert error.headers["retry-after"] == "20"  # 200 short at 10 tokens/s
    assert "600 tokens per minute" in error.message
    # The call used 100 tokens, not the 500 estimated: the 400 come back.
    limiter.record_tokens("key_1", estimated_tokens=500, actual_tokens=100)
    limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=600, estimated_tokens=300)
    # A call that used more than estimated is debited the difference.
    limiter.record_tokens("key_1", estimated_tokens=300, actual_tokens=500)
    assert refused(limiter, tokens_per_minute=600, estimated_tokens=1).headers["retry-after"] == "1"
    clock.now += 0.1
    limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=600, estimated_tokens=1)


def test_a_request_larger_than_the_minute_is_admitted_once_the_bucket_is_full() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=60, estimated_tokens=120)
    # The bucket is 60 tokens in debt: a 1-token request waits for 61 tokens at 1 token/s.
    assert refused(limiter, tokens_per_minute=60, estimated_tokens=1).headers["retry-after"] == "61"
    clock.now += 61
    limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=60, estimated_tokens=1)


def test_both_limits_refuse_without_spending_and_the_longer_wait_wins() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    limiter.admit("key_1", estimated_tokens=60, requests_per_minute=2, tokens_per_minute=60)
    error = refused(limiter, estimated_tokens=30, requests_per_minute=2, tokens_per_minute=60)
    assert error.headers["retry-after"] == "30"  # tokens (30 s) outweigh requests (ready now)
    clock.now += 30
    limiter.admit("key_1", estimated_tokens=30, requests_per_minute=2, tokens_per_minute=60)
    # The refusal took no request-token: one is left.
    limiter.admit("key_1", estimated_tokens=0, requests_per_minute=2, tokens_per_minute=60)
    error = refused(limiter, estimated_tokens=0, requests_per_minute=2, tokens_per_minute=60)
    assert error.headers["retry-after"] == "30"


def test_unlimited_zero_limits_and_limit_changes() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock=clock)
    for _ in range(1000):
        limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=None, estimated_tokens=10**9)
    assert refused(limiter, requests_per_minute=0).headers["retry-after"] == "60"
    for _ in range(3):
        limiter.admit("key_1", requests_per_minute=3, tokens_per_minute=None, estimated_tokens=0)
    refused(limiter, requests_per_minute=3)
    # Raising the limit moves the ceiling but does not forgive what was spent.
    assert refused(limiter, requests_per_minute=6).headers["retry-after"] == "10"
    with pytest.raises(ValueError, match="estimated_tokens"):
        limiter.admit("key_1", requests_per_minute=None, tokens_per_minute=None, estimated_tokens=-1)
    with pytest.raises(ValueError, match="redis_url"):
        RateLimiter(redis_url="redis://127.0.0.1:6379/0", clock=clock)  # shared limits need the real clock


def test_retry_after_is_accurate_on_the_real_clock() -> None:
    limiter = RateLimiter()
    limiter.admit("key_1", requests_per_minute=60, tokens_per_minute=None, estimated_tokens=0)
    for _ in range(59):
        limiter.admit("key_1", requests_per_minute=60, tokens_per_minute=None, estimated_tokens=0)
    retry_after = int(refused(limiter, requests_per_minute=60).headers["retry-after"])
    assert retry_after == 1
    time.sleep(retry_after)
    limiter.admit("key_1", requests_per_minute=60, tokens_per_minute=None, estimated_tokens=0)
