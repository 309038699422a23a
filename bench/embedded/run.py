"""The gateway's cost on the embedded engines: each modality through HTTP versus the same engine in-process.

Both sides load the same models with the same thread counts: the "direct"
side builds the embedded backends in this process and awaits them; the
"gateway" side is ``runinfra serve`` (a child process) with the same
deployment tables, called over keep-alive HTTP with a workspace key. Calls
alternate between the two sides so drift in machine load hits both alike.

Reported per modality: latency one request at a time (median each way, the
gateway's added time in ms and % of the engine's own time), next to the time
of an authenticated HTTP round trip that runs no engine (``GET /v1/models`` on
the same connection: the part of "added" that is the exchange itself), and
for short engine calls that round trip again right after as long an idle
wait, beside a bare uvloop server's (what a wait costs any Python server);
throughput with several requests in flight (requests/s each way and their
ratio; each request in flight is a thread calling the engine or the gateway,
and the in-process rate from as many coroutines is printed beside it); and for
streaming chat the time-to-first-token difference and the inter-token cadence
(tokens must reach the client as they are generated, with no batching).
The "pair" row is the median of the per-round differences, with its 95 %
confidence interval. The interval covers the noise within one run, not what
differs between runs: on one 2-vCPU VM the same code's default image row
read +6.5 % to +7.6 % on one day and +3.3 % to +4.0 % the next (intervals
about one point wide), with or without the other engines loaded. Quote
several runs.

    python bench/embedded/run.py [--rounds 7] [--latency-seconds 2] [--stream-rounds 30] [--throughput-seconds 3]
                                 [--only chat,stream,embeddings,speech,transcription,images]
    python bench/embedded/run.py --direct-only       # the engine side alone (no gateway)
    python bench/embedded/run.py --awake             # idle CPUs kept from halting (bench/awake.py)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import math
import multiprocessing
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from runinfra_gateway.backends.base import TranscriptionInput
from runinfra_gateway.backends.embedded import EmbeddedBackend, create_embedded_backend
from runinfra_gateway.testing import GatewayProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared awake.py
from awake import halts_without_polling, kept_awake

T = TypeVar("T")

THREADS = 1
MAX_ROUNDS = 1000
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

    def run_call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self.run(make())


class Http:
    """One keep-alive connection to the gateway, spoken with as little client work as HTTP/1.1 allows.

    A request leaves in one ``sendall``; an answer is read by ``Content-Length``, a stream by its chunks. The
    time measured is the gateway's, not a Python client's (``http.client`` parses each response's headers
    with ``email.parser``, ~50 µs a call here, and sends a request's head and body as two segments).
    """

    def __init__(self, base_url: str, key: str) -> None:
        host, port = base_url.split("//", 1)[1].split(":")
        self.address = (host, int(port))
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n".encode()
        self.sock: socket.socket | None = None
        self.buffer = bytearray()

    def post(self, path: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        self.send_post(path, body, content_type)
        status, length, _ = self.read_head()
        return status, self.read_exact(length)

    def models(self) -> None:
        """``GET /v1/models``: an authenticated round trip that runs no engine."""
        self.send(b"GET /v1/models HTTP/1.1\r\n%s\r\n" % self.head)
        status, length, _ = self.read_head()
        payload = self.read_exact(length)
        assert status == 200, payload[:300]

    def stream(self, path: str, body: dict[str, Any]) -> list[float]:
        """Arrival times (perf_counter) of each content delta of an SSE chat stream."""
        started = time.perf_counter()
        self.send_post(path, json.dumps({**body, "stream": True}).encode())
        status, _, chunked = self.read_head()
        assert status == 200, status
        assert chunked
        arrivals = [started]
        pending = b""
        while size := int(self.read_line().split(b";")[0], 16):
            pending += self.read_exact(size)
            self.read_exact(2)  # the CRLF after each chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"data: {"):
                    chunk = json.loads(line[6:])
                    if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                        arrivals.append(time.perf_counter())
        self.read_line()  # the empty trailer line
        return arrivals

    def send_post(self, path: str, body: bytes, content_type: str = "application/json") -> None:
        self.send(b"POST %s HTTP/1.1\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                  % (path.encode(), self.head, content_type.encode(), len(body), body))

    def send(self, request: bytes) -> None:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=600)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer.clear()
        self.sock.sendall(request)

    def read_head(self) -> tuple[int, int, bool]:
        """Status, Content-Length (0 if none) and whether the body is chunked."""
        head = self.read_until(b"\r\n\r\n").split(b"\r\n")
        length, chunked = 0, False
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
        return int(head[0].split(b" ", 2)[1]), length, chunked

    def read_line(self) -> bytes:
        return self.read_until(b"\r\n")

    def read_until(self, end: bytes) -> bytes:
        while (at := self.buffer.find(end)) < 0:
            self._receive()
        found = bytes(self.buffer[:at])
        del self.buffer[: at + len(end)]
        return found

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._receive()
        found = bytes(self.buffer[:size])
        del self.buffer[:size]
        return found

    def _receive(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(1 << 20)
        if not data:
            self.close()
            raise ConnectionError("the gateway closed the connection")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


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


def _median_interval(values: list[float]) -> tuple[float, float]:
    """A 95 % confidence interval of the median of ``values``, from order statistics (no assumed distribution).

    The ranks are n/2 -/+ 1.96 sqrt(n)/2, the normal approximation of the binomial count of values below the
    median; with few values it widens to the whole range.
    """
    ordered = sorted(values)
    n = len(ordered)
    spread = 0.98 * math.sqrt(n)
    low = max(0, math.floor(n / 2 - spread) - 1)
    high = min(n - 1, math.ceil(n / 2 + 1 + spread) - 1)
    return ordered[low], ordered[high]


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


@dataclass(frozen=True)
class Case:
    """One modality's request, as an in-process call and as the same request over HTTP."""

    label: str
    direct: Callable[[], Coroutine[Any, Any, Any]]
    path: str
    body: bytes
    content_type: str = "application/json"
    concurrency: int = 4

    def over_http(self, client: Http) -> None:
        status, payload = client.post(self.path, self.body, self.content_type)
        assert status == 200, payload[:300]


def _json_case(label: str, direct: Callable[[], Coroutine[Any, Any, Any]], path: str, body: dict[str, Any],
               concurrency: int = 4) -> Case:
    return Case(label, direct, path, json.dumps(body).encode(), concurrency=concurrency)


def _throughput(loop: Loop, case: Case, gateway_url: str | None, key: str, count: int, rounds: int
                ) -> tuple[float, float, float]:
    """Requests per second for ``count`` requests, ``case.concurrency`` in flight (best of ``rounds``).

    Returns (direct from threads, gateway, direct from coroutines). The gateway side's clients are
    Python threads with a keep-alive connection each, in this process; the direct side's callers are
    as many threads calling the engine in-process (the same shape of caller, without HTTP), and, for
    comparison, as many coroutines on one event loop: those resume in the same loop pass when a batch
    answers them, so a batching engine sees them all again at once, which independent callers are not.
    """
    concurrency = case.concurrency

    def each_thread(call: Callable[[int], None]) -> None:
        def worker(index: int) -> None:
            for _ in range(index, count, concurrency):
                call(index)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(worker, range(concurrency)))

    async def direct_coroutines() -> None:
        limit = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with limit:
                await case.direct()

        await asyncio.gather(*(one() for _ in range(count)))

    threads, gateway, coroutines = [], [], []
    for _ in range(rounds):
        threads.append(count / (_timed(lambda: each_thread(lambda _: loop.run_call(case.direct))) / 1000.0))
        if gateway_url is not None:
            # Connected afresh each round: a connection left idle through a long direct run would
            # outlive the gateway's keep-alive timeout.
            clients = [Http(gateway_url, key) for _ in range(concurrency)]
            gateway.append(count / (_timed(lambda: each_thread(lambda i: case.over_http(clients[i]))) / 1000.0))  # noqa: B023 (called within this pass)
            for client in clients:
                client.close()
        coroutines.append(count / (_timed(lambda: loop.run(direct_coroutines())) / 1000.0))
    return max(threads), max(gateway) if gateway else float("nan"), max(coroutines)


def _bare_http_server(ports: Any) -> None:
    """The least an HTTP server on uvloop can do: a fixed answer to every request head, no framework."""
    import uvloop

    answer = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}'

    class Answer(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport, self.pending = cast(asyncio.Transport, transport), b""  # uvloop's is no subclass

        def data_received(self, data: bytes) -> None:
            self.pending += data
            while b"\r\n\r\n" in self.pending:
                _, self.pending = self.pending.split(b"\r\n\r\n", 1)
                self.transport.write(answer)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
        ports.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    uvloop.run(serve())


def _exchange_after_idle(gateway: Http, rows: list[tuple[Case, list[float], list[float]]]) -> None:
    """The same round trip right after as long an idle wait as a short engine call, on the gateway and a bare server.

    Every gateway request in the latency table follows an idle wait (the engine's own time, or the
    direct call before it), and on this VM code run after a wait is several times slower than back to
    back. A bare uvloop server answering a fixed response shows what any Python server pays for that.
    """
    short = [(case.label, _median(d_times)) for case, d_times, _ in rows if _median(d_times) < 20.0]
    if not short:
        return
    spawn = multiprocessing.get_context("spawn")
    ports: Any = spawn.Queue()
    server = spawn.Process(target=_bare_http_server, args=(ports,), daemon=True)
    server.start()
    bare = Http(f"http://127.0.0.1:{ports.get(timeout=60)}", "")
    try:
        for label, idle_ms in short:
            medians = []
            for client in (gateway, bare):
                client.models()
                times = []
                for _ in range(100):
                    time.sleep(idle_ms / 1000.0)
                    times.append(_timed(client.models))
                medians.append(_median(times))
            print(f"  after {idle_ms:.1f} ms idle (the {label}'s time): gateway {medians[0]:.2f} ms, "
                  f"a bare uvloop server {medians[1]:.2f} ms ({100.0 * medians[1] / idle_ms:.1f} % of that time)")
    finally:
        bare.close()
        server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7,
                        help="timed calls each way per modality, at least (default 7)")
    parser.add_argument("--latency-seconds", type=float, default=2.0,
                        help=f"more rounds for short calls: up to this much timed time each way (default 2; "
                             f"at most {MAX_ROUNDS} rounds)")
    parser.add_argument("--stream-rounds", type=int, default=30,
                        help="streamed answers each way for time to first token (default 30)")
    parser.add_argument("--only", default="chat,stream,embeddings,speech,transcription,images",
                        help="comma-separated modalities to run (default: all)")
    parser.add_argument("--throughput-seconds", type=float, default=3.0,
                        help="length of each throughput run, each way (default 3; longer where that fits fewer than 4 "
                             "requests per request in flight; 0 skips throughput)")
    parser.add_argument("--throughput-rounds", type=int, default=2,
                        help="throughput runs each way, best kept (default 2)")
    parser.add_argument("--direct-only", action="store_true", help="time the in-process engines only (no gateway)")
    parser.add_argument("--awake", action="store_true",
                        help="keep every CPU out of idle halts while measuring (a nice-19 busy loop on each; "
                             "see bench/awake.py)")
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
    key = ""
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

    cases: list[Case] = []
    awake = contextlib.ExitStack()
    try:
        speech_wav = b""
        if "transcription" in direct or "speech" in direct:
            tts = direct.get("speech")
            if tts is not None:
                speech_wav = loop.run(tts.speech({"input": SPOKEN, "response_format": "wav"})).content

        if "chat" in wanted:
            chat = direct["chat"]
            cases.append(_json_case("chat (64 tokens)", lambda: chat.chat(dict(CHAT_BODY)), "/v1/chat/completions",
                                    {**CHAT_BODY, "model": "bench-chat"}))
        if "embeddings" in wanted:
            embedder = direct["embeddings"]
            cases.append(_json_case("embeddings (32 sentences)", lambda: embedder.embeddings({"input": SENTENCES}),
                                    "/v1/embeddings", {"model": "bench-embed", "input": SENTENCES}))
        if "speech" in wanted:
            speaker = direct["speech"]
            speech = {"input": SPOKEN, "response_format": "wav", "voice": "joe"}
            cases.append(_json_case("speech (piper, wav)", lambda: speaker.speech(dict(speech)), "/v1/audio/speech",
                                    {**speech, "model": "bench-tts"}))
        if "transcription" in wanted and speech_wav:
            transcriber = direct["transcription"]
            fields = {"model": "bench-asr", "response_format": "json"}
            multipart, content_type = _multipart(fields, speech_wav)
            upload = TranscriptionInput(speech_wav, "a.wav", "audio/wav", fields, multipart, content_type)
            cases.append(Case("transcription (whisper, 4 s)", lambda: transcriber.transcribe(upload),
                              "/v1/audio/transcriptions", multipart, content_type))
        if "images" in wanted:
            painter = direct["images"]
            # The default size (no "size" given: 1024x1024, as OpenAI's) and a small one, where the
            # engine's own time is shortest and a fixed HTTP round trip weighs most.
            for label, image in (
                ("image (digits, default 1024)", {"prompt": "a handwritten 7", "n": 1}),
                ("image (digits, 256x256)", {"prompt": "a handwritten 7", "n": 1, "size": "256x256"}),
            ):
                cases.append(_json_case(label, lambda image=image: painter.images(dict(image)),
                                        "/v1/images/generations", {**image, "model": "bench-images"}))

        if args.awake:
            print("--awake: every CPU kept out of idle halts by a nice-19 busy loop", flush=True)
        elif halts_without_polling():
            print("note: this VM halts idle CPUs without polling (haltpoll.guest_halt_poll_ns=0): every wake-up "
                  "of an idle CPU is a VM exit; --awake measures without that", flush=True)
        awake.enter_context(kept_awake(args.awake))

        # Latency: one call at a time, alternating sides, after one untimed call each way. A short call
        # gets more rounds (up to --latency-seconds of timed calls each way): its added time is a fraction
        # of a millisecond, which one noisy round can hide.
        rows: list[tuple[Case, list[float], list[float]]] = []
        for case in cases:
            run_direct = functools.partial(loop.run_call, case.direct)
            run_direct()
            if http_client is not None:
                case.over_http(http_client)
            one_ms = _timed(run_direct)
            rounds = max(args.rounds, min(MAX_ROUNDS, int(args.latency_seconds * 1000.0 / one_ms)))
            d_times, g_times = [], []
            for _ in range(rounds):
                d_times.append(_timed(run_direct))
                if http_client is not None:
                    g_times.append(_timed(functools.partial(case.over_http, http_client)))
            rows.append((case, d_times, g_times))

        print()
        print("latency, one request at a time")
        # Medians show the typical call; minima the cost with the least interference from other
        # processes on a shared machine (the gateway's own cost is the difference either way). Each
        # round times one call each way back to back, so "pair" (the median of the per-round
        # differences, over the median direct time) cancels load that drifts between rounds.
        print(f"{'modality':<30}{'':>5}{'direct ms':>11}{'gateway ms':>12}{'added ms':>10}{'added %':>9}{'rounds':>8}")
        for case, d_times, g_times in rows:
            for kind, pick in (("med", _median), ("min", min)):
                d = pick(d_times)
                g = pick(g_times) if g_times else float("nan")
                added = g - d
                name = case.label if kind == "med" else ""
                rounds = str(len(d_times)) if kind == "med" else ""
                print(f"{name:<30}{kind:>5}{d:>11.1f}{g:>12.1f}{added:>10.1f}{100.0 * added / d:>8.1f}%{rounds:>8}")
            if g_times:
                differences = [gateway_ms - direct_ms for direct_ms, gateway_ms in zip(d_times, g_times)]
                added = _median(differences)
                d = _median(d_times)
                low, high = _median_interval(differences)
                print(f"{'':<30}{'pair':>5}{'':>11}{'':>12}{added:>10.1f}{100.0 * added / d:>8.1f}%"
                      f"{'':>8}  95 % CI of the pair: {100.0 * low / d:+.1f} % to {100.0 * high / d:+.1f} %")
        if http_client is not None:
            http_client.models()
            exchange = [_timed(http_client.models) for _ in range(max(50, 5 * args.rounds))]
            print(f"an HTTP round trip with no engine (GET /v1/models, same connection and key): "
                  f"median {_median(exchange):.2f} ms, min {min(exchange):.2f} ms")
            _exchange_after_idle(http_client, rows)

        # Throughput: several requests in flight each way. The engines run one job at a time (one
        # thread), so this shows whether the gateway's own work overlaps the engine's or adds to it.
        if args.throughput_seconds > 0:
            throughput_cases = list(cases)
            if "embeddings" in wanted:  # many small requests: the micro-batcher's case
                throughput_cases.append(_json_case(
                    "embeddings (1 sentence)", lambda: embedder.embeddings({"input": SENTENCES[0]}),
                    "/v1/embeddings", {"model": "bench-embed", "input": SENTENCES[0]}, concurrency=16))
            print()
            print(f"throughput, requests in flight as shown (best of {args.throughput_rounds} runs of "
                  f"~{args.throughput_seconds:g} s each way, at least 4 requests per request in flight)")
            print("each request in flight is a Python thread in this process, calling the engine in-process or "
                  "the gateway over HTTP;\nthe last column calls the engine from as many coroutines on one event loop")
            print(f"{'modality':<30}{'in flight':>10}{'direct req/s':>14}{'gateway req/s':>15}{'gateway/direct':>16}"
                  f"{'coroutines req/s':>18}")
            medians = {case.label: _median(d_times) for case, d_times, _ in rows}
            for case in throughput_cases:
                one_ms = medians.get(case.label) or _timed(functools.partial(loop.run_call, case.direct))
                # At least four requests per caller: a slow engine (chat) fits a handful of answers in the
                # window, and one answer slowed by the host then moves the rate by more than 10 %.
                count = max(4 * case.concurrency, min(2000, round(args.throughput_seconds * 1000.0 / one_ms)))
                base_url = gateway.base_url if gateway is not None else None
                d_rate, g_rate, c_rate = _throughput(loop, case, base_url, key, count, args.throughput_rounds)
                print(f"{case.label:<30}{case.concurrency:>10}{d_rate:>14.1f}{g_rate:>15.1f}{g_rate / d_rate:>15.1%}"
                      f"{c_rate:>18.1f}")

        if "stream" in wanted:
            if http_client is not None:
                http_client.close()  # idle through the throughput runs: the gateway may have closed it
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
                low, high = _median_interval(paired)
                print(f"  time to first token added, median of {len(paired)} paired differences: "
                      f"{_median(paired):.2f} ms (95 % CI {low:.2f} to {high:.2f} ms)")
            if g_gaps:
                print(f"  inter-token gap: direct median {_median(d_gaps):.1f} ms / p95 "
                      f"{statistics.quantiles(d_gaps, n=20)[-1]:.1f} ms; gateway median {_median(g_gaps):.1f} ms / "
                      f"p95 {statistics.quantiles(g_gaps, n=20)[-1]:.1f} ms")
                print(f"  content chunks per answer: direct {_median([float(c) for c in d_counts]):.0f}, "
                      f"gateway {_median([float(c) for c in g_counts]):.0f} (equal: one chunk per token, no batching)")
    finally:
        awake.close()
        for backend in direct.values():
            loop.run(backend.aclose())
        if gateway is not None:
            gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
