"""Micro-benchmark of the money hot path: what every request pays in credits and rate limits.

Prints microseconds per operation for:
  * hold + settle (in-memory update + two journal appends; the batch writer runs alongside),
  * hold + release,
  * hold, a loop pass (standing in for the backend call), settle: 64 requests at once,
  * RateLimiter.admit with both limits set (+ record_tokens),
  * Prices.estimate_microcents for a small chat body and charge_microcents,
  * Ledger.balance (memory only),
  * IdempotencyStore begin + complete with a fresh key per request (SQLite), one request
    at a time and 64 at once (what ``gw+idem`` in bench/gateway_overhead pays), and a replay.

Run: .venv/bin/python bench/money_hot_path.py [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

from runinfra_gateway.billing import Ledger, Prices, Usage
from runinfra_gateway.idempotency import IdempotencyStore, StoredResponse
from runinfra_gateway.limits import RateLimiter
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade

PRICES = Prices.from_mapping({"input_per_1k_tokens": 0.01, "output_per_1k_tokens": 0.02})
BODY = {"model": "smollm2", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 64}
USAGE = Usage(input_tokens=24, output_tokens=9)


def per_op(seconds: float, count: int) -> str:
    return f"{seconds / count * 1e6:8.2f} µs"


async def run_requests(ledger: Ledger, requests: int, prefix: str, *, settle: bool, yield_every: int) -> float:
    estimate = PRICES.estimate_microcents("chat.completions", BODY)
    charge = PRICES.charge_microcents("chat.completions", USAGE)
    started = time.perf_counter()
    for number in range(requests):
        hold = await ledger.hold("ws", estimate, request_id=f"{prefix}_{number}")
        if settle:
            await ledger.settle(
                hold, charge, request_id=hold.request_id, key_id="key", deployment_id="dep",
                operation="chat.completions", usage=USAGE, status=200,
            )  # fmt: skip
        else:
            await ledger.release(hold)
        if number % yield_every == 0:
            await asyncio.sleep(0)  # let the batch writer take its turn, as it would between requests
    return time.perf_counter() - started


async def run_concurrent(ledger: Ledger, requests: int, prefix: str, clients: int = 64) -> float:
    estimate = PRICES.estimate_microcents("chat.completions", BODY)
    charge = PRICES.charge_microcents("chat.completions", USAGE)

    async def client(number: int) -> None:
        for request in range(number, requests, clients):
            hold = await ledger.hold("ws", estimate, request_id=f"{prefix}_{request}")
            await asyncio.sleep(0)  # the backend call: other requests run meanwhile
            await ledger.settle(
                hold, charge, request_id=hold.request_id, key_id="key", deployment_id="dep",
                operation="chat.completions", usage=USAGE, status=200,
            )  # fmt: skip

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    return time.perf_counter() - started


async def ledger_bench(directory: Path, requests: int) -> None:
    db = Database(f"sqlite:///{directory / 'bench.sqlite3'}")
    await asyncio.to_thread(upgrade, db)
    # Writer parked (long interval, huge batches): the request path alone, then the writer alone.
    ledger = Ledger(
        db,
        journal_path=directory / "credits",
        topup_url="https://example.invalid/topup",
        flush_interval_seconds=3600,
        batch_size=10**9,
    )
    await ledger.start()
    await ledger.open_account("ws", 10**9)
    await ledger.flush()
    hot_path = await run_requests(ledger, requests, "alone", settle=True, yield_every=10**9)
    started = time.perf_counter()
    await ledger.flush()
    writer = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(requests):
        ledger.balance("ws")
    balance = time.perf_counter() - started
    await ledger.close()

    # Writer running as in production (50 ms interval, batches of 1000), in its thread beside the loop.
    ledger = Ledger(db, journal_path=directory / "credits", topup_url="https://example.invalid/topup")
    await ledger.start()
    together = await run_requests(ledger, requests, "together", settle=True, yield_every=64)
    released = await run_requests(ledger, requests, "released", settle=False, yield_every=64)
    concurrent = await run_concurrent(ledger, requests, "concurrent")
    started = time.perf_counter()
    await ledger.close()
    drain = time.perf_counter() - started
    db.close()
    print(f"ledger hold+settle, request path only    {per_op(hot_path, requests)}  ({requests} requests)")
    print(f"ledger batch writer (SQL), per request   {per_op(writer, requests)}  (runs in the DB thread)")
    print(f"ledger hold+settle, writer running       {per_op(together, requests)}")
    print(f"ledger hold+release, writer running      {per_op(released, requests)}")
    print(f"ledger hold+settle, 64 at once, writer   {per_op(concurrent, requests)}")
    print(f"ledger balance()                         {per_op(balance, requests)}")
    print(f"close() drained the last batches in {drain * 1000:.0f} ms")


async def idempotency_bench(directory: Path, requests: int) -> None:
    db = Database(f"sqlite:///{directory / 'idempotency.sqlite3'}")
    await asyncio.to_thread(upgrade, db)
    store = IdempotencyStore(db)
    response = StoredResponse(200, (("content-type", "application/json"),), b'{"id":"chatcmpl-1"}' * 20)
    fingerprint = hashlib.sha256(b"POST /v1/chat/completions\n{}").digest()

    async def one(key: str) -> None:
        assert await store.begin("key_1", key, fingerprint) is None
        await store.complete("key_1", key, response)

    started = time.perf_counter()
    for number in range(requests):
        await one(f"serial-{number}")
    serial = time.perf_counter() - started

    async def client(number: int) -> None:
        for request in range(number, requests, 64):
            await one(f"concurrent-{request}")

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(64)))
    concurrent = time.perf_counter() - started
    started = time.perf_counter()
    for number in range(requests):
        await store.begin("key_1", f"concurrent-{number}", fingerprint)
    replay = time.perf_counter() - started
    db.close()
    print(f"idempotency begin+complete, 1 at a time  {per_op(serial, requests)}  ({requests} requests)")
    print(f"idempotency begin+complete, 64 at once   {per_op(concurrent, requests)}")
    print(f"idempotency begin that replays           {per_op(replay, requests)}")


def limiter_bench(requests: int) -> None:
    limiter = RateLimiter()
    keys = [f"key_{number}" for number in range(100)]
    started = time.perf_counter()
    for number in range(requests):
        key = keys[number % 100]
        limiter.admit(key, requests_per_minute=10**9, tokens_per_minute=10**12, estimated_tokens=100)
    admit = time.perf_counter() - started
    started = time.perf_counter()
    for number in range(requests):
        limiter.record_tokens(keys[number % 100], estimated_tokens=100, actual_tokens=40)
    record = time.perf_counter() - started
    print(f"limiter admit (rpm+tpm)                  {per_op(admit, requests)}")
    print(f"limiter record_tokens                    {per_op(record, requests)}")


def prices_bench(requests: int) -> None:
    started = time.perf_counter()
    for _ in range(requests):
        PRICES.estimate_microcents("chat.completions", BODY)
    estimate = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(requests):
        PRICES.charge_microcents("chat.completions", USAGE)
    charge = time.perf_counter() - started
    print(f"prices estimate_microcents (chat body)   {per_op(estimate, requests)}")
    print(f"prices charge_microcents                 {per_op(charge, requests)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--idempotent-requests", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(ledger_bench(Path(directory), args.requests))
        asyncio.run(idempotency_bench(Path(directory), args.idempotent_requests))
    limiter_bench(args.requests)
    prices_bench(args.requests)


if __name__ == "__main__":
    main()
