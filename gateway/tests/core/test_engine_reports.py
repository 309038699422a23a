"""What an upstream engine reports about its own work is charged only when it is plausible.

A usage block that cannot be charged is charged as none (the gateway's estimate): the request still
succeeds and the hold is settled. A negative count used to fail settlement after the work was done (500
to the client, the hold left open for good). More images than asked for are neither sent nor charged; a
vector that is not numbers cannot be packed as base64, and an image that is not base64 cannot be decoded:
each is the engine's 502, with nothing charged.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, LocalEngine, Tenant, admin, new_tenant

MISSING = object()  # the engine sends no usage (or duration) at all

BAD_COUNTS: list[Any] = [
    {"prompt_tokens": -1_000_000, "completion_tokens": 5},  # would be a refund
    {"prompt_tokens": 10**30, "completion_tokens": 1},  # beyond any column
    {"prompt_tokens": "12", "completion_tokens": "3"},
    {"prompt_tokens": [1], "completion_tokens": 1},
    {"prompt_tokens": 1.5, "completion_tokens": 1},
    {"prompt_tokens": True, "completion_tokens": 1},
    {"prompt_tokens": 3},  # half a report
    "lots",
]


class ReportingEngine(LocalEngine):
    """A real local OpenAI-style engine whose usage block (and transcription duration) a test sets.

    No real engine can be asked to report a negative token count on cue."""

    def __init__(self) -> None:
        self.reset()
        super().__init__()

    def reset(self) -> None:
        """Report nothing unusual: no usage, no duration, a unit vector, one image per request."""
        self.usage: Any = MISSING
        self.duration: Any = MISSING
        self.vector: Any = [0.6, 0.8]
        self.images_per_request = 1
        self.image_text: str | None = None  # None: a real PNG's base64
        self.speech_audio: bytes | None = None  # None: half a second of WAV

    def _with_usage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload if self.usage is MISSING else {**payload, "usage": self.usage}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(self._with_usage({
                "id": "c", "object": "chat.completion", "created": 1, "model": "engine",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "three little words"},
                             "finish_reason": "stop"}],
            }))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in ("three ", "little ", "words"):
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "engine",
                     "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        if self.usage is not MISSING:
            last = self._with_usage({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "engine",
                                     "choices": []})
            await response.write(b"data: " + json.dumps(last).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.json_response(self._with_usage({
            "object": "list", "model": "engine",
            "data": [{"object": "embedding", "index": 0, "embedding": self.vector}],
        }))

    async def _images(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        png = self.image_text
        if png is None:
            png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode("ascii")
        return web.json_response({"created": 1, "data": [{"b64_json": png}] * self.images_per_request})

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        answer: dict[str, Any] = {"text": "hello"}
        if self.duration is not MISSING:
            answer["duration"] = self.duration
        return web.json_response(answer)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        audio = self.speech_audio if self.speech_audio is not None else _wav(0.5)
        return web.Response(body=audio, content_type="audio/wav")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self._chat), web.post("/v1/embeddings", self._embeddings),
                web.post("/v1/audio/transcriptions", self._transcriptions),
                web.post("/v1/images/generations", self._images), web.post("/v1/audio/speech", self._speech)]


@pytest.fixture(scope="module")
def engine_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, ReportingEngine]]:
    engine = ReportingEngine().start()
    gateway = GatewayProcess(Path(tmp_path_factory.mktemp("reporting")), admin_token=ADMIN_TOKEN, config={
        "deployments": [{
            "id": "engine", "backend": "upstream", "base_url": engine.base_url,
            "operations": ["chat.completions", "embeddings", "audio.transcriptions", "images.generate",
                           "audio.speech"],
            "params": ["max_tokens"],
            "prices": {"input_per_1k_tokens": 10, "output_per_1k_tokens": 10, "per_audio_second": 1, "per_image": 1,
                       "per_1k_characters": 1},
        }],
    }).start()
    yield gateway, engine
    gateway.stop()
    engine.stop()


@pytest.fixture
def engine(engine_gateway: tuple[GatewayProcess, ReportingEngine]) -> Iterator[ReportingEngine]:
    """The module's engine, back to reporting nothing unusual after each test."""
    yield engine_gateway[1]
    engine_gateway[1].reset()


@pytest.fixture
def tenant(engine_gateway: tuple[GatewayProcess, ReportingEngine]) -> Tenant:
    """A fresh workspace with 100 cents on the module's gateway."""
    return new_tenant(engine_gateway[0], credits_cents=100)


CHAT = {"model": "engine", "messages": [{"role": "user", "content": "Say three words."}], "max_tokens": 8}


def _spent_on(tenant: Tenant, send: Any) -> tuple[int, Any]:
    """What one call cost the workspace (micro-cents, from its balance) and what it answered."""
    before = tenant.balance()["balance_cents"]
    answer = send()
    after = tenant.balance()
    assert after["held_cents"] == 0  # settled, nothing left on hold
    return round((before - after["balance_cents"]) * 1_000_000), answer


def _stream_usage(tenant: Tenant) -> dict[str, Any]:
    response = tenant.post("/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert response.status == 200, response.body
    events = [json.loads(line[6:]) for line in response.body.decode().split("\n") if line.startswith("data: {")]
    usages = [event["usage"] for event in events if event.get("usage")]
    assert len(usages) == 1
    usage: dict[str, Any] = usages[0]
    return usage


@pytest.mark.parametrize("usage", BAD_COUNTS, ids=repr)
def test_chat_usage_that_cannot_be_charged_is_charged_as_none(
    engine: ReportingEngine, tenant: Tenant, usage: Any
) -> None:
    unreported_cost, unreported = _spent_on(tenant, lambda: tenant.post("/chat/completions", CHAT))
    unreported_stream_cost, unreported_stream = _spent_on(tenant, lambda: _stream_usage(tenant))
    assert unreported_cost > 0
    assert unreported_stream_cost > 0

    engine.usage = usage
    cost, answer = _spent_on(tenant, lambda: tenant.post("/chat/completions", CHAT))
    assert answer.status == 200, answer.body
    assert cost == unreported_cost == int(answer.headers["x-runinfra-cost-microcents"])
    assert answer.json()["usage"] == unreported.json()["usage"]  # the estimate, as when none is reported
    stream_cost, stream_usage = _spent_on(tenant, lambda: _stream_usage(tenant))
    assert stream_cost == unreported_stream_cost
    assert stream_usage == unreported_stream


def test_whole_counts_sent_as_floats_are_charged_as_reported(engine: ReportingEngine, tenant: Tenant) -> None:
    costs = []
    for whole in (300, 300.0):
        usage = {"prompt_tokens": whole, "completion_tokens": whole - 100}
        engine.usage = usage
        costs.append(_spent_on(tenant, lambda: tenant.post("/chat/completions", CHAT))[0])
        costs.append(_spent_on(tenant, lambda: _stream_usage(tenant))[0])
    assert costs == [5_000_000] * 4  # 500 tokens at 10 cents per 1k, as reported, each way


@pytest.mark.parametrize("usage", [usage for usage in BAD_COUNTS if usage != {"prompt_tokens": 3}], ids=repr)
def test_embeddings_usage_that_cannot_be_charged_is_charged_as_none(
    engine: ReportingEngine, tenant: Tenant, usage: Any
) -> None:
    body = {"model": "engine", "input": "a sentence of a few words"}
    unreported_cost, _ = _spent_on(tenant, lambda: tenant.post("/embeddings", body))
    engine.usage = usage
    cost, answer = _spent_on(tenant, lambda: tenant.post("/embeddings", body))
    assert answer.status == 200, answer.body
    assert cost == unreported_cost > 0


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return buffer.getvalue()


def _upload(tenant: Tenant) -> Any:
    boundary = "b0undary"
    form = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nengine\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode() + _wav(2.0) + f"\r\n--{boundary}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    return tenant.post("/audio/transcriptions", form, headers={"Content-Type": content_type})


@pytest.mark.parametrize("duration", [-1, 1e308, "2", True, [2]], ids=repr)
def test_a_transcription_duration_that_cannot_be_charged_is_read_from_the_upload(
    engine: ReportingEngine, tenant: Tenant, duration: Any
) -> None:
    from_header, _ = _spent_on(tenant, lambda: _upload(tenant))
    assert from_header == 2_000_000  # 2 s of WAV at 1 cent per second
    engine.duration = duration
    cost, answer = _spent_on(tenant, lambda: _upload(tenant))
    assert answer.status == 200, answer.body
    assert cost == from_header


@pytest.mark.parametrize("duration", [-1, 1e308, True, "2"], ids=repr)
def test_a_pipeline_stage_duration_that_cannot_be_charged_is_measured_from_the_audio(
    engine_gateway: tuple[GatewayProcess, ReportingEngine], engine: ReportingEngine, tenant: Tenant, duration: Any
) -> None:
    # 1e308 seconds used to make the speech-to-text stage free (and the envelope say so); True was one second.
    pipeline_id = f"voice-{tenant.workspace_id[-8:]}"
    created = admin(engine_gateway[0], "POST", "/pipelines", {"id": pipeline_id, "workspace_id": tenant.workspace_id,
                    "deployments": {"speech_to_text": "engine", "llm": "engine", "text_to_speech": "engine"}})
    assert created.status == 201, created.body

    def ask() -> Any:
        return tenant.post(f"/{pipeline_id}/pipeline", _wav(2.0), headers={"Content-Type": "audio/wav"})

    measured, answer = _spent_on(tenant, ask)
    assert answer.status == 200, answer.body
    assert answer.json()["usage"]["input_audio_seconds"] == 2.0
    engine.duration = duration
    cost, answer = _spent_on(tenant, ask)
    assert answer.status == 200, answer.body
    assert answer.json()["usage"]["input_audio_seconds"] == 2.0
    assert cost == measured


def test_speech_whose_wav_header_ends_in_a_chunk_id_is_relayed(engine: ReportingEngine, tenant: Tenant) -> None:
    # A "data" chunk id in the last bytes, with no size after it: reading that size raised (a 500).
    engine.speech_audio = _wav(0.5)[:36] + b"LIST" + b"data"  # the fmt chunk, then ids where chunks would be
    answer = tenant.post("/audio/speech", {"model": "engine", "input": "hello", "voice": "alloy",
                                              "response_format": "wav"})
    assert answer.status == 200, answer.body
    assert answer.body == engine.speech_audio


def test_more_images_than_asked_for_are_neither_sent_nor_charged(engine: ReportingEngine, tenant: Tenant) -> None:
    engine.images_per_request = 5
    for response_format in ("url", "b64_json"):
        cost, answer = _spent_on(tenant, lambda response_format=response_format: tenant.post(
            "/images/generations", {"model": "engine", "prompt": "a 7", "n": 2, "response_format": response_format}
        ))
        assert answer.status == 200, answer.body
        assert len(answer.json()["data"]) == 2
        assert cost == 2_000_000  # two images at 1 cent


@pytest.mark.parametrize("text", ["not base64!", "iVBORw0KGgo", "", "iVBOR\nw0KGgo="], ids=repr)
def test_an_image_that_is_not_base64_is_a_502_in_either_format_and_charges_nothing(
    engine: ReportingEngine, tenant: Tenant, text: str
) -> None:
    engine.image_text = text  # bad characters, bad padding, nothing at all, a line break inside
    for response_format in ("url", "b64_json"):
        cost, answer = _spent_on(tenant, lambda response_format=response_format: tenant.post(
            "/images/generations", {"model": "engine", "prompt": "a 7", "response_format": response_format}
        ))
        assert answer.status == 502, (response_format, answer.body)
        assert answer.error["message"] == "Deployment 'engine' returned undecodable image data."
        assert cost == 0


@pytest.mark.parametrize("vector", [[[0.6], [0.8]], ["0.6", "0.8"], [None]], ids=repr)
def test_a_vector_that_is_not_numbers_is_a_502_as_base64_and_charges_nothing(
    engine: ReportingEngine, tenant: Tenant, vector: Any
) -> None:
    engine.vector = vector
    cost, answer = _spent_on(tenant, lambda: tenant.post(
        "/embeddings", {"model": "engine", "input": "hello", "encoding_format": "base64"}
    ))
    assert answer.status == 502, answer.body
    assert answer.error["type"] == "deployment_error"
    assert "not a list of numbers" in answer.error["message"]
    assert cost == 0
