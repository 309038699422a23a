"""A closed-loop load client for SSE streams: ``concurrency`` workers, each opening one stream after another.

    python bench/gateway_overhead/stream_load.py --url URL --body-file F --concurrency 16 --seconds 5 [--auth KEY]

Prints one JSON object: streams completed, streams/s, time to first byte and to the
end of the stream (p50/p99, ms), and failures (non-200 or a stream not ending in [DONE]).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> dict[str, object]:
    first_byte: list[float] = []
    full: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                got_first = 0.0
                tail = b""
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        async for piece in response.content.iter_any():
                            if not got_first:
                                got_first = time.perf_counter()
                            tail = (tail + piece)[-32:]
                        status = response.status
                except aiohttp.ClientError:
                    failures += 1
                    continue
                ended = time.perf_counter()
                if status != 200 or not tail.endswith(b"data: [DONE]\n\n"):
                    failures += 1
                    continue
                first_byte.append((got_first - started) * 1000)
                full.append((ended - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "streams": len(full),
        "failures": failures,
        "seconds": elapsed,
        "streams_per_second": len(full) / elapsed,
        "ttfb_p50_ms": percentile(first_byte, 0.50),
        "ttfb_p99_ms": percentile(first_byte, 0.99),
        "full_p50_ms": percentile(full, 0.50),
        "full_p99_ms": percentile(full, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--auth", default="")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    headers = {"Content-Type": "application/json"}
    if args.auth:
        headers["Authorization"] = "Bearer " + args.auth
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.body_file.read_bytes(), headers, args.concurrency, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
