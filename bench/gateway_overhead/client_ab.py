"""The upstream HTTP client against aiohttp's, on the same nginx: client-side CPU per request.

    python bench/gateway_overhead/client_ab.py [--requests 3000] [--rounds 3]

Sequential POSTs of the benchmark's chat body to nginx's canned completion
(nginx on CPU 0), each answer parsed with orjson, alternating the two clients
round by round; prints the process CPU time per request of each (median of the
rounds). This is the figure behind the gateway's choice of its own small
HTTP/1.1 client (``runinfra_gateway/backends/_http_client.py``) over aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling run.py, for its nginx set-up
import run as overhead
from runinfra_gateway.backends._http_client import Endpoint, HttpClient


async def with_aiohttp(url: str, body: bytes, requests: int) -> float:
    async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session:
        started = time.process_time()
        for _ in range(requests):
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                orjson.loads(await response.read())
        return (time.process_time() - started) / requests * 1e6


async def with_ours(base: str, body: bytes, requests: int) -> float:
    client = HttpClient(max_connections=64, connect_timeout=5)
    endpoint = Endpoint.from_url(base)
    path = endpoint.base_path + "/chat/completions"
    started = time.process_time()
    for _ in range(requests):
        response = await client.request(b"POST", endpoint, path, b"Content-Type: application/json\r\n", body)
        orjson.loads(await response.read())
        response.release()
    spent = (time.process_time() - started) / requests * 1e6
    await client.aclose()
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="runinfra-client-ab-"))
    port = overhead.free_port()
    (workdir / "nginx.conf").write_text(overhead.nginx_config(workdir, port))
    nginx = subprocess.Popen(["taskset", "-c", overhead.LOAD_CPU, shutil.which("nginx") or "/usr/sbin/nginx",
                              "-c", str(workdir / "nginx.conf"), "-p", str(workdir)])
    try:
        base = f"http://127.0.0.1:{port}/json/v1"
        overhead.wait_http(base + "/models", 10)
        body = overhead.chat_body("bench", stream=False)
        results: dict[str, list[float]] = {"aiohttp": [], "runinfra httptools client": []}
        for _ in range(args.rounds):
            asyncio.run(with_aiohttp(base + "/chat/completions", body, 200))  # warm
            results["aiohttp"].append(asyncio.run(with_aiohttp(base + "/chat/completions", body, args.requests)))
            asyncio.run(with_ours(base, body, 200))
            results["runinfra httptools client"].append(asyncio.run(with_ours(base, body, args.requests)))
        print(f"client-side CPU per request, {args.requests} sequential requests x {args.rounds} rounds (median):")
        for name, values in results.items():
            rounds = ", ".join(f"{v:.0f}" for v in values)
            print(f"  {name:<26} {statistics.median(values):7.1f} us   (rounds: {rounds})")
        ratio = statistics.median(results["aiohttp"]) / statistics.median(results["runinfra httptools client"])
        print(f"  aiohttp / ours: {ratio:.1f}x")
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
