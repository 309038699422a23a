"""One benchmark client in its own process (run by ``bench/sdk_overhead.py``; not imported).

Each client runs in a fresh interpreter so import time and peak RSS are its own, and so the
published ``runinfra==0.2.0`` (same import name as ours) runs under its own virtualenv.
Usage: ``python worker.py '<json config>'``; prints one JSON object.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

API_KEY = "sk-bench-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Say hello."}]
MODEL = "bench-model"


def _build(kind: str, base: str, sse_base: str) -> Tuple[Callable[[], Any], Callable[[], Any], Callable[[], int], Any]:
    """(chat call, embedding call, stream call returning its event count, client)."""
    if kind in ("ours", "peer"):
        from runinfra import RunInfra

        client = RunInfra(api_key=API_KEY, base_url=base, max_retries=0)
        sse_client = RunInfra(api_key=API_KEY, base_url=sse_base, max_retries=0)

        def chat() -> Any:
            return client.chat.completions.create(model=MODEL, messages=MESSAGES)

        def embed() -> Any:
            return client.embeddings.create(model=MODEL, input="hello world")

        def stream() -> int:
            count = 0
            for _event in sse_client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
                count += 1
            return count

        return chat, embed, stream, client
    if kind == "openai":
        import openai

        extra: Dict[str, Any] = {}
        if base.startswith("https"):
            import ssl

            extra["http_client"] = openai.DefaultHttpxClient(verify=ssl.create_default_context())
        oa = openai.OpenAI(api_key=API_KEY, base_url=base, max_retries=0, **extra)
        oa_sse = openai.OpenAI(api_key=API_KEY, base_url=sse_base, max_retries=0, **extra)

        def oa_chat() -> Any:
            return oa.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]

        def oa_embed() -> Any:
            return oa.embeddings.create(model=MODEL, input="hello world", encoding_format="float")

        def oa_stream() -> int:
            count = 0
            for _event in oa_sse.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):  # type: ignore[arg-type]
                count += 1
            return count

        return oa_chat, oa_embed, oa_stream, oa
    if kind == "floor":
        return _floor(base, sse_base)
    raise SystemExit(f"unknown client kind {kind!r}")


def _floor(base: str, sse_base: str) -> Tuple[Callable[[], Any], Callable[[], Any], Callable[[], int], Any]:
    """A bare ``http.client`` keep-alive loop: the least a stdlib client must do per call."""
    import http.client
    import ssl

    scheme, rest = base.split("://", 1)
    authority, _, prefix = rest.partition("/")
    host, _, port = authority.rpartition(":")
    sse_prefix = sse_base.split(authority, 1)[1]
    context = ssl.create_default_context() if scheme == "https" else None
    local = threading.local()
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", "Accept": "application/json"}
    chat_body = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
    embed_body = json.dumps({"model": MODEL, "input": "hello world"}).encode()
    stream_body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}).encode()

    def connection() -> Any:
        conn = getattr(local, "conn", None)
        if conn is None:
            if context is not None:
                conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=60)
            else:
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
            local.conn = conn
        return conn

    def post(path: str, body: bytes) -> Any:
        conn = connection()
        conn.request("POST", path, body, headers)
        return json.loads(conn.getresponse().read())

    def chat() -> Any:
        return post(f"/{prefix}/chat/completions", chat_body)

    def embed() -> Any:
        return post(f"/{prefix}/embeddings", embed_body)

    def stream() -> int:
        conn = connection()
        conn.request("POST", f"{sse_prefix}/chat/completions", stream_body, headers)
        response = conn.getresponse()
        count = 0
        pending = b""
        loads = json.loads
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if line.startswith(b"data: "):
                    data = line[6:]
                    if data == b"[DONE]":
                        continue
                    loads(data)
                    count += 1
        response.read()
        return count

    return chat, embed, stream, None


def _timed_loop(call: Callable[[], Any], seconds: float) -> Tuple[int, float, float, List[float]]:
    """Calls until ``seconds`` pass (at least one): (count, wall, process CPU, per-call latencies)."""
    latencies: List[float] = []
    perf = time.perf_counter
    cpu_start = time.process_time()
    started = perf()
    deadline = started + seconds
    count = 0
    while True:
        before = perf()
        call()
        after = perf()
        latencies.append(after - before)
        count += 1
        if after >= deadline:
            break
    return count, perf() - started, time.process_time() - cpu_start, latencies


def _threaded(call: Callable[[], Any], seconds: float, threads: int) -> Tuple[int, float, float]:
    counts = [0] * threads
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        barrier.wait()
        while not stop.is_set():
            call()
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    cpu_start = time.process_time()
    barrier.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(counts), time.perf_counter() - started, time.process_time() - cpu_start


def _streams(stream: Callable[[], int], seconds: float) -> Tuple[int, float]:
    started = time.perf_counter()
    events = 0
    while True:
        events += stream()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return events, elapsed


def main() -> None:
    """Build the clients, say ready, then run the measurements the driver asks for, one at a time.

    The driver runs every client's worker at once but lets only one measure at a time (turns
    of a fraction of a second each), so the load the shared machine carries falls on all
    clients alike.
    """
    config = json.loads(sys.argv[1])
    kind = config["kind"]
    started = time.perf_counter()  # the interpreter is up; this is import + construct
    chat, embed, stream, _client = _build(kind, config["base"], config["sse_base"])
    startup_ms = (time.perf_counter() - started) * 1000
    if config.get("startup_only"):
        print(json.dumps({"startup_ms": startup_ms}), flush=True)
        return
    for _ in range(3):  # warm up: connections, TLS, lazy imports
        chat()
        embed()
    stream()
    _threaded(chat, 0.05, config.get("threads", 8))  # one pooled (TLS) connection per thread
    print(json.dumps({"ready": True, "startup_ms": startup_ms}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op, seconds = command["op"], command.get("seconds", 0.0)
        result: Dict[str, Any]
        if op == "chat":
            count, wall, cpu, latencies = _timed_loop(chat, seconds)
            result = {"count": count, "wall": wall, "cpu": cpu, "latencies": latencies}
        elif op == "embed":
            count, wall, cpu, _latencies = _timed_loop(embed, seconds)
            result = {"count": count, "wall": wall, "cpu": cpu}
        elif op == "threads":
            count, wall, cpu = _threaded(chat, seconds, command["threads"])
            result = {"count": count, "wall": wall, "cpu": cpu}
        elif op == "sse":
            events, wall = _streams(stream, seconds)
            result = {"count": events, "wall": wall}
        else:
            result = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            print(json.dumps(result), flush=True)
            os._exit(0)  # skip interpreter teardown: nothing left to measure
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
