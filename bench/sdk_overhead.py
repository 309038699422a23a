"""SDK overhead benchmark: our SDK vs ``runinfra==0.2.0`` vs ``openai`` vs a bare ``http.client`` loop.

One run against one local nginx (Debian ``nginx-light``) serving canned chat and
embedding JSON and a canned 1,000-event SSE stream, over HTTP and over HTTPS (a local CA
appended to the system trust store, handed to every client through ``SSL_CERT_FILE``). Each
client runs in its own interpreter (``bench/sdk/worker.py``); all four are up at once but
measure in turns (a fraction of a second each, many turns), so a busy shared machine slows
them alike instead of whichever happened to run during a spike.

    python bench/sdk_overhead.py                 # about a minute
    python bench/sdk_overhead.py --turns 40 --seconds 0.25 --startup-samples 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "bench" / "sdk" / "worker.py"
sys.path.insert(0, str(ROOT / "sdk" / "tests"))
from sdk_servers import make_certificate_authority  # type: ignore[import-not-found]  # noqa: E402 - the tests' CA helper

PYTHONS = {
    "ours": ROOT / ".venv" / "bin" / "python",
    "peer": ROOT / ".venv-peer" / "bin" / "python",
    "openai": ROOT / ".venv" / "bin" / "python",
    "floor": ROOT / ".venv" / "bin" / "python",
}
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _canned_files(www: Path, events: int) -> None:
    chat = {
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1767225600, "model": "bench-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }  # fmt: skip
    rng = random.Random(7)
    embedding = {
        "object": "list", "model": "bench-model",
        "data": [{"object": "embedding", "index": 0, "embedding": [round(rng.uniform(-1, 1), 6) for _ in range(384)]}],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }  # fmt: skip
    frames = []
    for index in range(events):
        chunk = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1767225600, "model": "bench-model",
            "choices": [{"index": 0, "delta": {"content": f" token{index}"},
                         "finish_reason": "stop" if index == events - 1 else None}],
        }  # fmt: skip
        frames.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    (www / "v1" / "chat").mkdir(parents=True)
    (www / "sse" / "v1" / "chat").mkdir(parents=True)
    (www / "v1" / "chat" / "completions").write_text(json.dumps(chat))
    (www / "v1" / "embeddings").write_text(json.dumps(embedding))
    (www / "sse" / "v1" / "chat" / "completions").write_bytes(b"".join(frames))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_nginx(work: Path, cert: Path, key: Path) -> Tuple[subprocess.Popen[bytes], int, int]:
    http_port, https_port = _free_port(), _free_port()
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (work / name).mkdir()
    config = work / "nginx.conf"
    config.write_text(f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    keepalive_requests 10000000; keepalive_timeout 300s;
    types {{ }}
    default_type application/json;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        root {work}/www;
        add_header x-request-id $request_id always;
        # POST to a static file is 405 in nginx; answer it with the file instead.
        location /v1/ {{ error_page 405 =200 $uri; }}
        location /sse/v1/ {{ default_type text/event-stream; error_page 405 =200 $uri; }}
    }}
}}
""")
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(work)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise SystemExit("nginx did not start: " + (work / "error.log").read_text())
    return process, http_port, https_port


class _Worker:
    """One client's process, driven over its stdin/stdout."""

    def __init__(self, kind: str, config: Dict[str, Any], env: Dict[str, str]) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [str(PYTHONS[kind]), str(WORKER), json.dumps({"kind": kind, **config})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.startup_ms = float(self._read()["startup_ms"])

    def _read(self) -> Dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise RuntimeError(f"{self.kind} worker died: {self.process.stderr.read()[-2000:]}")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: Dict[str, Any]) -> Dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def finish(self) -> float:
        peak = float(self.ask({"op": "exit"})["peak_rss_mib"])
        self.process.wait(30)
        return peak


def _startup_sample(kind: str, origin: str, env: Dict[str, str]) -> Optional[float]:
    config = {"kind": kind, "base": origin + "/v1", "sse_base": origin + "/sse/v1", "startup_only": True}
    completed = subprocess.run(
        [str(PYTHONS[kind]), str(WORKER), json.dumps(config)], capture_output=True, text=True, env=env, timeout=300
    )
    if completed.returncode != 0:
        return None
    return float(json.loads(completed.stdout.strip().splitlines()[-1])["startup_ms"])


def _measure(kinds: List[str], origin: str, env: Dict[str, str], args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """All clients up at once; in each turn every client runs each measurement once, alone."""
    config = {"base": origin + "/v1", "sse_base": origin + "/sse/v1", "threads": args.threads}
    workers = [_Worker(kind, config, env) for kind in kinds]
    totals: Dict[str, Dict[str, Any]] = {
        worker.kind: {op: {"count": 0, "wall": 0.0, "cpu": 0.0} for op in ("chat", "embed", "threads", "sse")}
        for worker in workers
    }
    latencies: Dict[str, List[float]] = {worker.kind: [] for worker in workers}
    shuffle = random.Random(11).shuffle
    for _turn in range(args.turns):
        shuffle(workers)
        for op in ("chat", "embed", "threads", "sse"):
            for worker in workers:
                result = worker.ask({"op": op, "seconds": args.seconds, "threads": args.threads})
                total = totals[worker.kind][op]
                total["count"] += result["count"]
                total["wall"] += result["wall"]
                total["cpu"] += result.get("cpu", 0.0)
                latencies[worker.kind].extend(result.get("latencies", ()))
    figures: Dict[str, Dict[str, Any]] = {}
    for worker in workers:
        total = totals[worker.kind]
        ordered = sorted(latencies[worker.kind])
        figures[worker.kind] = {
            "chat_rps": total["chat"]["count"] / total["chat"]["wall"],
            "chat_threads_rps": total["threads"]["count"] / total["threads"]["wall"],
            "chat_p50_ms": ordered[len(ordered) // 2] * 1000,
            "chat_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            "chat_cpu_us": total["chat"]["cpu"] / total["chat"]["count"] * 1e6,
            "embed_rps": total["embed"]["count"] / total["embed"]["wall"],
            "sse_events_per_s": total["sse"]["count"] / total["sse"]["wall"],
            "startup_ms": worker.startup_ms,
            "peak_rss_mib": worker.finish(),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="turns; each client measures everything once per turn")
    parser.add_argument("--seconds", type=float, default=0.12, help="length of one measurement within a turn")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--events", type=int, default=1000, help="events in the canned stream")
    parser.add_argument("--startup-samples", type=int, default=3, help="extra fresh interpreters per client")
    parser.add_argument("--clients", default="ours,peer,openai,floor")
    parser.add_argument("--transports", default="http,https")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        raise SystemExit("nginx is not installed (Debian: nginx-light)")
    kinds = [kind for kind in args.clients.split(",") if kind]
    missing = [kind for kind in kinds if not PYTHONS[kind].exists()]
    if missing:
        print(f"note: no interpreter for {missing} (e.g. .venv-peer for runinfra==0.2.0); skipped", file=sys.stderr)
        kinds = [kind for kind in kinds if kind not in missing]

    with tempfile.TemporaryDirectory(prefix="sdk-bench-") as temp:
        work = Path(temp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user and must read the canned files
        ca, cert, key = make_certificate_authority(work)
        bundle = work / "bundle.pem"
        bundle.write_bytes((SYSTEM_BUNDLE.read_bytes() if SYSTEM_BUNDLE.exists() else b"") + b"\n" + ca.read_bytes())
        _canned_files(work / "www", args.events)
        nginx, http_port, https_port = _start_nginx(work, cert, key)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("RUNINFRA")}
        env["SSL_CERT_FILE"] = str(bundle)
        origins = {"http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}"}
        summary: Dict[str, Dict[str, Dict[str, Any]]] = {}
        startup: Dict[str, List[float]] = {kind: [] for kind in kinds}
        try:
            started = time.monotonic()
            for transport in args.transports.split(","):
                summary[transport] = _measure(kinds, origins[transport], env, args)
                for kind, figures in summary[transport].items():
                    startup[kind].append(figures["startup_ms"])
                print(f"{transport} done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
            for _ in range(args.startup_samples):
                for kind in kinds:
                    sample = _startup_sample(kind, origins["https"], env)
                    if sample is not None:
                        startup[kind].append(sample)
        finally:
            nginx.terminate()
            nginx.wait(10)
    _report(summary, startup, kinds, args)


def _report(summary: Dict[str, Dict[str, Dict[str, Any]]], startup: Dict[str, List[float]],
            kinds: List[str], args: argparse.Namespace) -> None:  # fmt: skip
    header = (f"{'transport':9} {'client':7} {'chat r/s':>9} {'8thr r/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'CPU us/r':>8} {'emb r/s':>8} {'SSE ev/s':>9} {'RSS MiB':>7}")  # fmt: skip
    print(f"\nSDK overhead: {args.turns} turns x {args.seconds} s per measurement per client (clients take turns), "
          f"{args.threads} threads, {args.events}-event stream\n")  # fmt: skip
    print(header)
    print("-" * len(header))
    for transport, by_kind in summary.items():
        for kind in kinds:
            figures = by_kind.get(kind)
            if figures is None:
                continue
            print(f"{transport:9} {kind:7} {figures['chat_rps']:9.0f} {figures['chat_threads_rps']:9.0f} "
                  f"{figures['chat_p50_ms']:7.3f} {figures['chat_p99_ms']:7.3f} {figures['chat_cpu_us']:8.0f} "
                  f"{figures['embed_rps']:8.0f} {figures['sse_events_per_s']:9.0f} "
                  f"{figures['peak_rss_mib']:7.1f}")  # fmt: skip
    print("\nimport + construct in a fresh interpreter (median ms): " + ", ".join(
        f"{kind} {statistics.median(values):.1f}" for kind, values in startup.items() if values))  # fmt: skip
    print("\nours vs peers (our req/s or events/s over theirs; > 1 means ours is faster):")
    for transport, figures in summary.items():
        ours = figures.get("ours")
        if ours is None:
            continue
        for kind, other in figures.items():
            if kind == "ours":
                continue
            print(f"  {transport:5} vs {kind:6}: chat x{ours['chat_rps'] / other['chat_rps']:.2f}, "
                  f"8 threads x{ours['chat_threads_rps'] / other['chat_threads_rps']:.2f}, "
                  f"embeddings x{ours['embed_rps'] / other['embed_rps']:.2f}, "
                  f"SSE x{ours['sse_events_per_s'] / other['sse_events_per_s']:.2f}, "
                  f"CPU/request x{other['chat_cpu_us'] / ours['chat_cpu_us']:.2f}")  # fmt: skip
        floor = figures.get("floor")
        if floor is not None:
            print(f"  {transport:5} targets: time/request vs floor {floor['chat_rps'] / ours['chat_rps']:.2f}x "
                  f"(chat; median latency {ours['chat_p50_ms'] / floor['chat_p50_ms']:.2f}x), "
                  f"{floor['embed_rps'] / ours['embed_rps']:.2f}x (embeddings) [<= 1.25]; "
                  f"8 threads / sequential {ours['chat_threads_rps'] / ours['chat_rps']:.2f} [>= 1]; "
                  f"SSE {100 * ours['sse_events_per_s'] / floor['sse_events_per_s']:.0f}% of floor [>= 90%]; "
                  f"client CPU/request vs floor {ours['chat_cpu_us'] / floor['chat_cpu_us']:.2f}x")  # fmt: skip
    if startup.get("ours") and any("ours" in f for f in summary.values()):
        print(f"  import + construct {statistics.median(startup['ours']):.1f} ms [< 15]; peak RSS "
              f"{max(f['ours']['peak_rss_mib'] for f in summary.values() if 'ours' in f):.1f} MiB [< 30]")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "startup_ms": startup}, indent=2))


if __name__ == "__main__":
    main()
