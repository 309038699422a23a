"""The gateway's cost on the embedded engines: each modality through HTTP versus the same engine in-process.

Both sides load the same models with the same thread counts: the "direct"
side builds the embedded backends in this process and awaits them; the
"gateway" side is ``runinfra serve`` (a child process) with the same
deployment tables, called over keep-alive HTTP with a workspace key. Calls
alternate between the two sides so drift in machine load hits both alike.

Reported per modality: median latency each way, the gateway's added time
(ms and % of the engine's own time), and for streaming chat the
time-to-first-token difference and the inter-token cadence (tokens must reach
the client as they are generated, with no batching).

    python bench/embedded/run.py [--rounds 7] [--stream-rounds 30]
                                 [--only chat,stream,embeddings,speech,transcription,images]
    python bench/embedded/run.py --direct-only       # the engine side alone (no gateway)
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from runinfra_gateway.backends.base import TranscriptionInput
from runinfra_gateway.backends.embedded import EmbeddedBackend, create_embedded_backend
from runinfra_gateway.testing import GatewayProcess

T = TypeVar("T")

THREADS = 1
DEPLOYMENTS: dict[str, dict[str, Any]] = {
    "chat": {"id": "bench-chat", "engine": "llama_cpp", "operations": ["chat.completions"], "n_ctx": 2048},
    "embeddings": {"id": "bench-embed", "engine": "onnx_embeddings", "operations": ["embeddings"]},
    "speech": {"id": "bench-tts", "engine": "piper", "operations": ["audio.speech"]},
    "transcription": {"id": "bench-asr", "engine": "whisper", "operations": ["audio.transcriptions"]},
    "images": {"id": "bench-images", "engine": "digits_diffusion", "operations": ["images.generate"]},
}
CHAT_BODY = {
    "messages": [{"role": "user", "content": "Write three sentences about the sea."}],
    "temperature": 0,
    "max_tokens": 64,
}
SENTENCES = [f"Sentence number {i} talks about {'weather' if i % 2 else 'markets'} and more." for i in range(32)]
SPOKEN = "The gateway adds very little time to what the engine itself takes."


class Loop:
    """An event loop on a thread, for the direct side."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(600)


class Http:
    """One keep-alive connection to the gateway."""

    def __init__(self, base_url: str, key: str) -> None:
        host, port = base_url.split("//", 1)[1].split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=600)
        self.key = key

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        self.connection.request(
            "POST", path, body=body, headers={"Authorization": f"Bearer {self.key}", "Content-Type": content_type}
        )
        response = self.connection.getresponse()
        return response.status, response.read()

    def stream(self, path: str, body: dict[str, Any]) -> list[float]:
        """Arrival times (perf_counter) of each content delta of an SSE chat stream."""
        started = time.perf_counter()
        self.connection.request(
            "POST",
            path,
            body=json.dumps({**body, "stream": True}).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        response = self.connection.getresponse()
        assert response.status == 200, response.read()
        arrivals = [started]
        while True:
            line = response.readline()
            if not line:
                break
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                if line.strip() == b"data: [DONE]":
                    response.read()
                    break
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter())
        return arrivals


def _multipart(fields: dict[str, str], audio: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n".encode() + audio + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _gaps(arrivals: list[float]) -> list[float]:
    return [(b - a) * 1000.0 for a, b in zip(arrivals[1:], arrivals[2:])]


async def _direct_stream(backend: EmbeddedBackend) -> list[float]:
    started = time.perf_counter()
    arrivals = [started]
    async for chunk in backend.chat_stream(dict(CHAT_BODY)):
        data = chunk.data
        if data.get("choices") and data["choices"][0]["delta"].get("content"):
            arrivals.append(time.perf_counter())
    return arrivals


def _throughput(loop: Loop, embedder: EmbeddedBackend, gateway: GatewayProcess | None, http_client: Http | None,
                rounds: int) -> None:
    """Requests per second for many small concurrent embedding requests (the micro-batcher's case)."""
    concurrency, total = 16, 128
    texts = [f"a short sentence number {i} to embed" for i in range(total)]

    async def direct_all() -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one(text: str) -> None:
            async with limit:
                await embedder.embeddings({"input": text})

        await asyncio.gather(*(one(t) for t in texts))

    def gateway_all() -> None:
        assert gateway is not None
        assert http_client is not None
        from concurrent.futures import ThreadPoolExecutor

        clients = [Http(gateway.base_url, http_client.key) for _ in range(concurrency)]

        def worker(index: int) -> None:
            for text in texts[index::concurrency]:
                body = json.dumps({"model": "bench-embed", "input": text}).encode()
                status, payload = clients[index].post("/v1/embeddings", body)
                assert status == 200, payload[:200]

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(worker, range(concurrency)))

    direct_rates, gateway_rates = [], []
    for _ in range(max(1, rounds // 2)):
        direct_rates.append(total / (_timed(lambda: loop.run(direct_all())) / 1000.0))
        if http_client is not None:
            gateway_rates.append(total / (_timed(gateway_all) / 1000.0))
    print(f"\nembeddings throughput, {total} one-sentence requests, {concurrency} in flight: "
          f"direct {max(direct_rates):.0f} req/s, gateway {max(gateway_rates) if gateway_rates else float('nan'):.0f} "
          f"req/s (best of {len(direct_rates)}; the gateway client is {concurrency} Python threads)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream-rounds", type=int, default=30,
                        help="streamed answers each way for time to first token (default 30)")
    parser.add_argument("--only", default="chat,stream,embeddings,speech,transcription,images")
    parser.add_argument("--direct-only", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    data_dir = Path(tempfile.mkdtemp(prefix="runinfra-bench-embedded-"))

    tables = {
        name: {**table, "backend": "embedded", "threads": THREADS, "workspace": "bench"}
        for name, table in DEPLOYMENTS.items()
        if name in wanted or (name == "chat" and "stream" in wanted)
    }
    loop = Loop()
    print(f"loading the engines in-process ({THREADS} thread each) ...", flush=True)
    direct: dict[str, EmbeddedBackend] = {}
    for name, table in tables.items():
        backend = create_embedded_backend(table["id"], {**table, "data_dir": str(data_dir)})
        results = loop.run(backend.verify(table["operations"]))
        assert all(r.ok for r in results), results
        direct[name] = backend

    http_client: Http | None = None
    gateway: GatewayProcess | None = None
    if not args.direct_only:
        admin = "rat_" + secrets.token_urlsafe(24)
        config = {
            "workspaces": [{"id": "bench", "name": "bench", "credits_cents": 10_000_000}],
            "limits": {"requests_per_minute": 1_000_000, "tokens_per_minute": 1_000_000_000},
            "deployments": list(tables.values()),
        }
        print("starting runinfra serve with the same deployments ...", flush=True)
        gateway = GatewayProcess(data_dir / "gateway", config=config, admin_token=admin).start(timeout=600)
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
        connection.request(
            "POST",
            "/admin/v1/keys",
            body=json.dumps({"scope": "workspace", "workspace_id": "bench", "name": "bench"}),
            headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        )
        key = json.loads(connection.getresponse().read())["secret"]
        http_client = Http(gateway.base_url, key)

    rows: list[tuple[str, list[float], list[float]]] = []
    try:
        speech_wav = b""
        if "transcription" in direct or "speech" in direct:
            tts = direct.get("speech")
            if tts is not None:
                speech_wav = loop.run(tts.speech({"input": SPOKEN, "response_format": "wav"})).content

        def compare(label: str, run_direct: Callable[[], Any], run_gateway: Callable[[], Any]) -> None:
            run_direct()
            if http_client is not None:
                run_gateway()  # warm both sides once
            d_times, g_times = [], []
            for _ in range(args.rounds):
                d_times.append(_timed(run_direct))
                if http_client is not None:
                    g_times.append(_timed(run_gateway))
            rows.append((label, d_times, g_times))

        def gateway_call(path: str, body: dict[str, Any]) -> Callable[[], Any]:
            def call() -> None:
                assert http_client is not None
                status, payload = http_client.post(path, json.dumps(body).encode())
                assert status == 200, payload[:300]

            return call

        if "chat" in wanted:
            body = {**CHAT_BODY, "model": "bench-chat"}
            compare("chat (64 tokens)", lambda: loop.run(direct["chat"].chat(dict(CHAT_BODY))),
                    gateway_call("/v1/chat/completions", body))
        if "embeddings" in wanted:
            embedder = direct["embeddings"]
            compare("embeddings (32 sentences)", lambda: loop.run(embedder.embeddings({"input": SENTENCES})),
                    gateway_call("/v1/embeddings", {"model": "bench-embed", "input": SENTENCES}))
        if "speech" in wanted:
            speech = {"input": SPOKEN, "response_format": "wav", "voice": "joe"}
            compare("speech (piper, wav)", lambda: loop.run(direct["speech"].speech(dict(speech))),
                    gateway_call("/v1/audio/speech", {**speech, "model": "bench-tts"}))
        if "transcription" in wanted and speech_wav:
            fields = {"model": "bench-asr", "response_format": "json"}
            multipart, content_type = _multipart(fields, speech_wav)
            upload = TranscriptionInput(speech_wav, "a.wav", "audio/wav", fields, multipart, content_type)

            def gateway_asr() -> None:
                assert http_client is not None
                status, payload = http_client.post("/v1/audio/transcriptions", multipart, content_type)
                assert status == 200, payload[:300]

            compare("transcription (whisper, 4 s)", lambda: loop.run(direct["transcription"].transcribe(upload)),
                    gateway_asr)
        if "images" in wanted:
            # The default size (no "size" given: 1024x1024, as OpenAI's) and a small one, where the
            # engine's own time is shortest and a fixed HTTP round trip weighs most.
            for label, image in (
                ("image (digits, default 1024)", {"prompt": "a handwritten 7", "n": 1}),
                ("image (digits, 256x256)", {"prompt": "a handwritten 7", "n": 1, "size": "256x256"}),
            ):
                compare(label, lambda image=image: loop.run(direct["images"].images(dict(image))),
                        gateway_call("/v1/images/generations", {**image, "model": "bench-images"}))

        print()
        # Medians show the typical call; minima the cost with the least interference from other
        # processes on a shared machine (the gateway's own cost is the difference either way). Each
        # round times one call each way back to back, so "pair" (the median of the per-round
        # differences, over the median direct time) cancels load that drifts between rounds.
        print(f"{'modality':<30}{'':>5}{'direct ms':>11}{'gateway ms':>12}{'added ms':>10}{'added %':>9}")
        for label, d_times, g_times in rows:
            for kind, pick in (("med", _median), ("min", min)):
                d = pick(d_times)
                g = pick(g_times) if g_times else float("nan")
                added = g - d
                name = label if kind == "med" else ""
                print(f"{name:<30}{kind:>5}{d:>11.1f}{g:>12.1f}{added:>10.1f}{100.0 * added / d:>8.1f}%")
            if g_times:
                added = _median([gateway_ms - direct_ms for direct_ms, gateway_ms in zip(d_times, g_times)])
                d = _median(d_times)
                print(f"{'':<30}{'pair':>5}{'':>11}{'':>12}{added:>10.1f}{100.0 * added / d:>8.1f}%")

        if "embeddings" in wanted:
            _throughput(loop, direct["embeddings"], gateway, http_client, args.rounds)

        if "stream" in wanted:
            d_ttft, g_ttft, d_gaps, g_gaps, d_counts, g_counts = [], [], [], [], [], []
            # One untimed answer each way first: both engines then hold the prompt's prefix in their cache.
            loop.run(_direct_stream(direct["chat"]))
            if http_client is not None:
                http_client.stream("/v1/chat/completions", {**CHAT_BODY, "model": "bench-chat"})
            for _ in range(args.stream_rounds):
                arrivals = loop.run(_direct_stream(direct["chat"]))
                d_ttft.append((arrivals[1] - arrivals[0]) * 1000.0)
                d_gaps += _gaps(arrivals)
                d_counts.append(len(arrivals) - 1)
                if http_client is not None:
                    arrivals = http_client.stream("/v1/chat/completions", {**CHAT_BODY, "model": "bench-chat"})
                    g_ttft.append((arrivals[1] - arrivals[0]) * 1000.0)
                    g_gaps += _gaps(arrivals)
                    g_counts.append(len(arrivals) - 1)
            print()
            print("streaming chat (64 tokens, temperature 0)")
            for kind, pick in (("median", _median), ("min", min)):
                direct_ttft = pick(d_ttft)
                gateway_ttft = pick(g_ttft) if g_ttft else float("nan")
                print(f"  time to first token ({kind}): direct {direct_ttft:.1f} ms, gateway {gateway_ttft:.1f} ms, "
                      f"added {gateway_ttft - direct_ttft:.1f} ms")
            if g_ttft:
                # Each gateway answer against the direct answer just before it: machine drift cancels out.
                paired = [g - d for d, g in zip(d_ttft, g_ttft)]
                print(f"  time to first token added, median of {len(paired)} paired differences: "
                      f"{_median(paired):.2f} ms")
            if g_gaps:
                print(f"  inter-token gap: direct median {_median(d_gaps):.1f} ms / p95 "
                      f"{statistics.quantiles(d_gaps, n=20)[-1]:.1f} ms; gateway median {_median(g_gaps):.1f} ms / "
                      f"p95 {statistics.quantiles(g_gaps, n=20)[-1]:.1f} ms")
                print(f"  content chunks per answer: direct {_median([float(c) for c in d_counts]):.0f}, "
                      f"gateway {_median([float(c) for c in g_counts]):.0f} (equal: one chunk per token, no batching)")
    finally:
        for backend in direct.values():
            loop.run(backend.aclose())
        if gateway is not None:
            gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
