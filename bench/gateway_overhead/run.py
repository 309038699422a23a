"""Gateway overhead: direct vs our gateway vs LiteLLM proxy vs a bare aiohttp relay, in one interleaved run.

    python bench/gateway_overhead/run.py [--seconds 5] [--rounds 2] [--concurrency 1,16,64] [--no-litellm]

The upstream is nginx (Debian ``nginx-light``) serving a canned chat completion
and a canned 100-event SSE stream. Each proxy runs pinned to CPU 1
(``taskset -c 1``); nginx and the load generators share CPU 0. Rounds
interleave the targets so a noisy neighbour hurts them all alike.

* non-stream: ``wrk`` (Debian) with ``post.lua``; requests/s and p50/p99 latency;
* stream: ``stream_load.py`` (aiohttp); streams/s, time to first byte and to ``[DONE]``;
* CPU per request: the proxy's user+system ticks from ``/proc/<pid>/stat`` (its
  whole process tree) over the run, divided by the requests it completed.

Our gateway runs as ``runinfra serve --config <toml>`` with everything on: key
auth and scopes, rate limits (set high enough never to refuse), credit holds and
settlement, the idempotency store, JSON access logs, Prometheus metrics; the
workspace and key are made through the admin API. The ``gw+idem`` row is the
same gateway with a fresh ``Idempotency-Key`` on every non-stream request, so
each answer is stored before it is sent. LiteLLM (``litellm[proxy]``)
is installed into its own venv (``.venv-bench``) with ``uv`` on first use; with
no database and ``LITELLM_LOCAL_MODEL_COST_MAP=True``.

``--awake`` measures without the cost of waking an idle CPU: a busy loop at the
lowest priority (nice 19, and so is its scheduler autogroup) on each CPU keeps
it from halting, and any real work preempts it at once. On a VM that halts its
idle vCPUs without polling first (``haltpoll.guest_halt_poll_ns=0`` on the
kernel command line; the run prints a note when it finds that) every wake-up is
a VM exit and an interrupt through the host, paid twice per proxied request at
concurrency 1. The loops are not in any proxy's process tree, so CPU per request
is unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared awake.py
from awake import IDLE_LOOP, halts_without_polling

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = sys.executable
BENCH_VENV = ROOT / ".venv-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "1"
LOAD_CPU = "0"
# nginx tells the gateway's short verification probe (a non-stream chat) from the benchmark's stream
# requests by body size: the canned SSE answer goes to bodies of 300 bytes or more.
PROMPT = "Summarise the following paragraph in one sentence. " * 6


# -- small helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, timeout: float, *, expect: int = 200, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == expect:
                    return
                last = str(response.status)
        except urllib.error.HTTPError as exc:
            if exc.code == expect:
                return
            last = str(exc.code)
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer {expect} within {timeout:g} s (last: {last})")


def post_json(url: str, payload: dict[str, Any], token: str = "") -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def process_tree_ticks(pid: int) -> int:
    """User+system clock ticks of ``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        stats[int(entry)] = (ppid, utime + stime)
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += stats.get(current, (0, 0))[1]
        stack.extend(children.get(current, []))
    return total


# -- the fake upstream: nginx with canned answers ------------------------------------------------


def canned_completion() -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A short canned benchmark answer."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 9, "total_tokens": 89},
    }, separators=(",", ":")).encode()


def canned_stream() -> bytes:
    """100 events (role, 97 deltas, finish, usage) and ``[DONE]``, as an engine streams them."""

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "bench",
                 "choices": choices, **extra}
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [event([{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]) for i in range(97)]
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(event([], usage={"prompt_tokens": 80, "completion_tokens": 97, "total_tokens": 177}))
    return b"".join(events) + b"data: [DONE]\n\n"


def nginx_config(workdir: Path, port: int) -> str:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "canned"):
        (workdir / name).mkdir(exist_ok=True)
    (workdir / "canned" / "completion.json").write_bytes(canned_completion())
    (workdir / "canned" / "stream.sse").write_bytes(canned_stream())
    # Static files answer GET only; the error_page turns the POST's 405 into the file (a GET redirect).
    return f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx.error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  tcp_nodelay on;
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  map $content_length $answer {{ "~^[0-9]{{1,2}}$" json; "~^[0-2][0-9]{{2}}$" json; default sse; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /json/v1/chat/completions {{ rewrite ^ /canned/completion.json last; }}
    location = /sse/v1/chat/completions {{
      if ($answer = json) {{ rewrite ^ /canned/completion.json last; }}
      rewrite ^ /canned/stream.sse last;
    }}
    location /canned/ {{
      internal;
      alias {workdir}/canned/;
      types {{ application/json json; text/event-stream sse; }}
      error_page 405 =200 $uri;
    }}
    location ~ ^/(json|sse)/v1/models$ {{ default_type application/json; return 200 '{{"object":"list","data":[]}}'; }}
  }}
}}
"""


# -- the targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    json_url: str
    sse_url: str
    json_body: bytes
    sse_body: bytes
    auth: str = ""
    pid: int | None = None
    note: str = ""
    #: The wrk script for its non-stream runs, and whether it is measured with streams too.
    lua: str = "post.lua"
    streams: bool = True
    results: dict[tuple[str, int], list[dict[str, float]]] = field(default_factory=dict)


class Processes:
    """Children started by the benchmark, stopped (by their own pid) when it ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], *, cpu: str, log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        process = subprocess.Popen(["taskset", "-c", cpu, *args], stdout=handle, stderr=subprocess.STDOUT,
                                   env=env, cwd=cwd, start_new_session=True)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def chat_body(model: str, *, stream: bool) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def start_gateway(procs: Processes, workdir: Path, upstream: str) -> Target:
    port = free_port()
    admin_token = "bench-admin-" + os.urandom(8).hex()
    data_dir = workdir / "gateway-data"
    config = workdir / "gateway.toml"
    prices = "[deployments.prices]\ninput_per_1k_tokens = 0.001\noutput_per_1k_tokens = 0.002\n"
    config.write_text(f"""
[server]
host = "127.0.0.1"
port = {port}
data_dir = "{data_dir}"
access_log = true

[limits]
requests_per_minute = 100000000
tokens_per_minute = 100000000000

[[deployments]]
id = "bench-json"
backend = "upstream"
base_url = "{upstream}/json/v1"
model = "bench"
operations = ["chat.completions"]
{prices}
[[deployments]]
id = "bench-sse"
backend = "upstream"
base_url = "{upstream}/sse/v1"
model = "bench"
operations = ["chat.completions"]
{prices}""")
    runinfra = str(Path(PYTHON).parent / "runinfra")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
    env["RUNINFRA_ADMIN_TOKEN"] = admin_token
    process = procs.start([runinfra, "serve", "--config", str(config)], cpu=PROXY_CPU, log=workdir / "gateway.log",
                          env=env)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/readyz", 60)
    status, workspace = post_json(base + "/admin/v1/workspaces", {"name": "bench", "credits_cents": 10_000_000},
                                  admin_token)
    if status not in (200, 201):
        raise RuntimeError(f"creating the bench workspace failed: {status} {workspace}")
    status, key = post_json(base + "/admin/v1/keys", {"scope": "workspace", "workspace_id": workspace["id"],
                                                      "name": "bench"}, admin_token)
    if status not in (200, 201):
        raise RuntimeError(f"creating the bench key failed: {status} {key}")
    return Target("gateway", base + "/v1/chat/completions", base + "/v1/chat/completions",
                  chat_body("bench-json", stream=False), chat_body("bench-sse", stream=True),
                  auth=key["secret"], pid=process.pid)


def ensure_litellm(workdir: Path) -> Path | None:
    litellm = BENCH_VENV / "bin" / "litellm"
    if litellm.exists():
        return litellm
    uv = shutil.which("uv")
    if uv is None:
        return None
    log = workdir / "litellm-install.log"
    with log.open("wb") as handle:
        steps = [[uv, "venv", "-q", "-p", "3.11", str(BENCH_VENV)],
                 [uv, "pip", "install", "-q", "-p", str(BENCH_VENV), "litellm[proxy]"]]
        for step in steps:
            if subprocess.run(step, stdout=handle, stderr=subprocess.STDOUT, check=False).returncode != 0:
                return None
    return litellm if litellm.exists() else None


def start_litellm(procs: Processes, workdir: Path, upstream: str) -> Target | str:
    litellm = ensure_litellm(workdir)
    if litellm is None:
        return f"LiteLLM could not be installed here (see {workdir / 'litellm-install.log'}); skipped"
    port = free_port()
    master_key = "sk-bench-" + os.urandom(8).hex()
    config = workdir / "litellm.yaml"
    config.write_text(f"""model_list:
  - model_name: bench-json
    litellm_params: {{model: openai/bench, api_base: "{upstream}/json/v1", api_key: unused}}
  - model_name: bench-sse
    litellm_params: {{model: openai/bench, api_base: "{upstream}/sse/v1", api_key: unused}}
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
""")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
           "LITELLM_TELEMETRY": "False"}
    env.pop("DATABASE_URL", None)
    process = procs.start([str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                           "--num_workers", "1"], cpu=PROXY_CPU, log=workdir / "litellm.log", env=env, cwd=workdir)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health/liveliness", 180)
    except RuntimeError as exc:
        return f"LiteLLM did not start ({exc}); see {workdir / 'litellm.log'}"
    return Target("litellm", base + "/v1/chat/completions", base + "/v1/chat/completions",
                  chat_body("bench-json", stream=False), chat_body("bench-sse", stream=True),
                  auth=master_key, pid=process.pid)


def sanity_check(target: Target) -> str:
    """'' when one non-stream and one stream request succeed through the target, else why not."""
    headers = {"Content-Type": "application/json"}
    if target.auth:
        headers["Authorization"] = "Bearer " + target.auth
    for url, body, streamed in ((target.json_url, target.json_body, False), (target.sse_url, target.sse_body, True)):
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            return f"{'stream' if streamed else 'non-stream'} request answered {exc.code}: {exc.read()[:300]!r}"
        except OSError as exc:
            return f"request failed: {exc}"
        if streamed and not raw.endswith(b"data: [DONE]\n\n"):
            return f"stream did not end with [DONE]: {raw[-200:]!r}"
        if not streamed and b'"choices"' not in raw:
            return f"non-stream answer has no choices: {raw[:200]!r}"
    return ""


# -- measuring ---------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(target: Target, concurrency: int, seconds: float, workdir: Path) -> dict[str, float]:
    body_file = workdir / f"{target.name}.json-body"
    body_file.write_bytes(target.json_body)
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_AUTH": target.auth}
    before = process_tree_ticks(target.pid) if target.pid else 0
    output = subprocess.run(
        ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency",
         "-s", str(HERE / target.lua), target.json_url],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    after = process_tree_ticks(target.pid) if target.pid else 0
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _ms(re.search(r"\s50%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"\s99%\s+(\S+)", output).group(1)),  # type: ignore[union-attr]
        "requests": float(requests),
        "failures": float((int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)),
        "cpu_ms": (after - before) * 1000 / CLK_TCK / max(1, requests) if target.pid else float("nan"),
    }


def run_streams(target: Target, concurrency: int, seconds: float, workdir: Path) -> dict[str, float]:
    body_file = workdir / f"{target.name}.sse-body"
    body_file.write_bytes(target.sse_body)
    before = process_tree_ticks(target.pid) if target.pid else 0
    output = subprocess.run(
        ["taskset", "-c", LOAD_CPU, PYTHON, str(HERE / "stream_load.py"), "--url", target.sse_url,
         "--body-file", str(body_file), "--auth", target.auth, "--concurrency", str(concurrency),
         "--seconds", f"{seconds:g}"],
        capture_output=True, text=True, check=True,
    ).stdout
    after = process_tree_ticks(target.pid) if target.pid else 0
    result = json.loads(output)
    streams = int(result["streams"])
    return {
        "sps": result["streams_per_second"], "ttfb50": result["ttfb_p50_ms"], "ttfb99": result["ttfb_p99_ms"],
        "full50": result["full_p50_ms"], "full99": result["full_p99_ms"], "failures": float(result["failures"]),
        "requests": float(streams),
        "cpu_ms": (after - before) * 1000 / CLK_TCK / max(1, streams) if target.pid else float("nan"),
    }


def median(results: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in results)


# -- reporting -----------------------------------------------------------------------------------------


def fmt(value: float, digits: int = 2) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"  # NaN → "-"


def report(targets: list[Target], concurrencies: list[int], notes: list[str], args: argparse.Namespace) -> None:
    by_name = {t.name: t for t in targets}
    print()
    print(f"gateway overhead — {args.rounds} interleaved round(s) x {args.seconds:g} s per cell; proxies on CPU "
          f"{PROXY_CPU}, nginx + load generators on CPU {LOAD_CPU}; medians over rounds")
    for note in notes:
        print("note:", note)
    print()
    print("non-stream (wrk, canned chat.completion)")
    print(f"{'target':<9} {'conc':>4} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'CPU ms/req':>10} "
          f"{'fail':>5}")
    for c in concurrencies:
        direct = by_name["direct"].results.get(("json", c))
        for target in targets:
            runs = target.results.get(("json", c))
            if not runs:
                continue
            added = median(runs, "p50") - median(direct, "p50") if direct and target.name != "direct" else float("nan")
            print(f"{target.name:<9} {c:>4} {fmt(median(runs, 'rps'), 0):>10} {fmt(median(runs, 'p50')):>8} "
                  f"{fmt(median(runs, 'p99')):>8} {fmt(added, 3):>8} {fmt(median(runs, 'cpu_ms'), 3):>10} "
                  f"{int(sum(r['failures'] for r in runs)):>5}")
    print()
    print("stream (stream_load.py, canned 100-event SSE)")
    print(f"{'target':<9} {'conc':>4} {'streams/s':>10} {'TTFB p50':>9} {'TTFB p99':>9} {'full p50':>9} "
          f"{'full p99':>9} {'CPU ms/stream':>13} {'fail':>5}")
    for c in concurrencies:
        for target in targets:
            runs = target.results.get(("sse", c))
            if not runs:
                continue
            print(f"{target.name:<9} {c:>4} {fmt(median(runs, 'sps'), 0):>10} {fmt(median(runs, 'ttfb50')):>9} "
                  f"{fmt(median(runs, 'ttfb99')):>9} {fmt(median(runs, 'full50')):>9} {fmt(median(runs, 'full99')):>9} "
                  f"{fmt(median(runs, 'cpu_ms'), 3):>13} {int(sum(r['failures'] for r in runs)):>5}")
    print()
    gateway, relay, litellm = by_name.get("gateway"), by_name.get("relay"), by_name.get("litellm")
    print("ratios and targets")
    for c in concurrencies:
        parts = []
        if gateway and relay and gateway.results.get(("json", c)) and relay.results.get(("json", c)):
            ratio = median(gateway.results[("json", c)], "cpu_ms") / median(relay.results[("json", c)], "cpu_ms")
            parts.append(f"gateway/relay CPU per request {ratio:.2f}x")
            ratio_s = median(gateway.results[("sse", c)], "cpu_ms") / median(relay.results[("sse", c)], "cpu_ms")
            parts.append(f"per stream {ratio_s:.2f}x")
        if gateway and litellm and litellm.results.get(("json", c)):
            ratio = median(gateway.results[("json", c)], "rps") / median(litellm.results[("json", c)], "rps")
            parts.append(f"gateway/LiteLLM req/s {ratio:.1f}x")
            ratio_s = median(gateway.results[("sse", c)], "sps") / max(1e-9, median(litellm.results[("sse", c)], "sps"))
            parts.append(f"streams/s {ratio_s:.1f}x")
        if parts:
            print(f"  c={c}: " + ", ".join(parts))
    if gateway and by_name.get("direct") and gateway.results:
        checks = []
        direct = by_name["direct"]
        if 1 in concurrencies:
            added = median(gateway.results[("json", 1)], "p50") - median(direct.results[("json", 1)], "p50")
            checks.append(("added p50 at c=1 < 0.3 ms", f"{added:.3f} ms", added < 0.3))
        if 64 in concurrencies:
            rps = median(gateway.results[("json", 64)], "rps")
            checks.append((">= 3,000 req/s at c=64", f"{rps:,.0f}", rps >= 3000))
            sps = median(gateway.results[("sse", 64)], "sps")
            checks.append((">= 1,000 streams/s at c=64", f"{sps:,.0f}", sps >= 1000))
            p99 = median(gateway.results[("json", 64)], "p99")
            checks.append(("p99 at c=64 < 30 ms", f"{p99:.2f} ms", p99 < 30))
        if relay:
            worst = max(median(gateway.results[("json", c)], "cpu_ms") / median(relay.results[("json", c)], "cpu_ms")
                        for c in concurrencies)
            checks.append(("CPU per request <= 2.5x relay (worst c)", f"{worst:.2f}x", worst <= 2.5))
        for label, value, ok in checks:
            print(f"  {'PASS' if ok else 'MISS'}  {label}: {value}")


# -- main ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="runinfra-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"(logs kept in {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    parser.add_argument("--targets", default="direct,relay,gateway,litellm", help="which targets to measure")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    parser.add_argument("--no-idempotency", action="store_true",
                        help="skip the gw+idem row (the gateway with a fresh Idempotency-Key on every request)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with all logs")
    parser.add_argument("--awake", action="store_true",
                        help="keep both CPUs out of idle halts while measuring (a nice-19 busy loop on each)")
    parser.add_argument("--hold", type=float, default=0.0,
                        help="after setting up, print the targets and wait this many seconds (for profiling)")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    wanted = set(args.targets.split(","))
    if args.no_litellm:
        wanted.discard("litellm")
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"{tool} is not installed (scripts/setup installs nginx-light and wrk)", file=sys.stderr)
            return 2
    procs = Processes()
    # Stopped by a signal (timeout, Ctrl-C in a pipeline): unwind, so the finally below stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    notes: list[str] = []
    if (os.cpu_count() or 1) < 2:
        notes.append("only one CPU: proxies and load generators share it")
    if halts_without_polling():
        notes.append("this VM halts idle CPUs without polling (haltpoll.guest_halt_poll_ns=0): a wake-up is a VM exit")
    if args.awake:
        notes.append("--awake: both CPUs kept out of idle halts by a nice-19 busy loop each")
    with workspace(args.keep) as workdir:
        try:
            nginx_port = free_port()
            (workdir / "nginx.conf").write_text(nginx_config(workdir, nginx_port))
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            procs.start([nginx, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)], cpu=LOAD_CPU,
                        log=workdir / "nginx.log")
            upstream = f"http://127.0.0.1:{nginx_port}"
            wait_http(upstream + "/json/v1/models", 10)
            targets = [Target("direct", upstream + "/json/v1/chat/completions", upstream + "/sse/v1/chat/completions",
                              chat_body("bench", stream=False), chat_body("bench", stream=True))]
            if "relay" in wanted:
                relay_port = free_port()
                relay = procs.start([PYTHON, str(HERE / "relay.py"), "--port", str(relay_port), "--upstream", upstream],
                                    cpu=PROXY_CPU, log=workdir / "relay.log")
                base = f"http://127.0.0.1:{relay_port}"
                wait_http(base + "/json/v1/models", 20, expect=405)
                targets.append(Target("relay", base + "/json/v1/chat/completions", base + "/sse/v1/chat/completions",
                                      chat_body("bench", stream=False), chat_body("bench", stream=True),
                                      pid=relay.pid))
            if "gateway" in wanted:
                try:
                    gateway = start_gateway(procs, workdir, upstream)
                    targets.append(gateway)
                    if not args.no_idempotency:
                        # The same process, every request with a fresh Idempotency-Key (stored before it answers).
                        targets.append(replace(gateway, name="gw+idem", lua="post_idempotent.lua", streams=False,
                                               results={}))
                except (RuntimeError, OSError) as exc:
                    notes.append(f"our gateway could not be started: {exc}")
            if "litellm" in wanted:
                started = start_litellm(procs, workdir, upstream)
                if isinstance(started, str):
                    notes.append(started)
                else:
                    targets.append(started)
            for target in list(targets):
                problem = sanity_check(target)
                if problem:
                    notes.append(f"{target.name} left out: {problem}")
                    targets.remove(target)
            if args.hold:
                described = workdir / "targets.json"
                described.touch(mode=0o600)
                described.write_text(json.dumps([
                    {"name": t.name, "pid": t.pid, "json_url": t.json_url, "sse_url": t.sse_url, "auth": t.auth,
                     "json_body": t.json_body.decode(), "sse_body": t.sse_body.decode()} for t in targets
                ]))
                print(f"targets (with their keys) in {described}; holding {args.hold:g} s", flush=True)
                time.sleep(args.hold)
            total = args.rounds * len(concurrencies) * len(targets)
            done = 0
            if args.awake:
                for cpu in (PROXY_CPU, LOAD_CPU):
                    procs.start([PYTHON, "-c", IDLE_LOOP], cpu=cpu, log=workdir / f"awake-{cpu}.log")
            for _ in range(args.rounds):
                for c in concurrencies:
                    for target in targets:
                        target.results.setdefault(("json", c), []).append(run_wrk(target, c, args.seconds, workdir))
                        if target.streams:
                            target.results.setdefault(("sse", c), []).append(
                                run_streams(target, c, args.seconds, workdir))
                        done += 1
                        print(f"\r  measured {done}/{total}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            report(targets, concurrencies, notes, args)
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
