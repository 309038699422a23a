"""Embedded engines behind the :class:`~runinfra_gateway.backends.base.Backend` seam.

A deployment table with ``backend = "embedded"`` names an ``engine``; this
module builds that engine (its models load on worker threads, never on the
event loop), says what it supports (:func:`describe`: operations, the OpenAI
parameters each operation accepts, voices) and proves it works before it is
served (:meth:`EmbeddedBackend.verify`: one real request per operation).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import errors
from ..engines._options import EngineOptions
from ..engines._speech import SpeechRequest
from ..engines._text import word_error_rate
from ..engines._transcription import TranscriptionRequest
from ..engines.audio_codecs import decode_audio
from ..engines.digits_diffusion import DigitsDiffusionEngine
from ..engines.flite_tts import FliteEngine
from ..engines.llama_chat import LlamaChatEngine
from ..engines.onnx_embeddings import EmbeddingsEngine
from ..engines.piper_tts import PiperEngine
from ..engines.png import decode_png
from ..engines.pocketsphinx_asr import PocketSphinxEngine
from ..engines.whisper_asr import WhisperEngine
from .base import AudioResult, ChatChunk, GeneratedImages, Operation, ProbeResult, TranscriptionInput

__all__ = ["ENGINES", "EmbeddedBackend", "EngineInfo", "create_embedded_backend", "describe", "judge_speech"]

_CHAT_PARAMS = (
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "user",
    "metadata",
)
_EMBEDDING_PARAMS = ("model", "input", "encoding_format", "dimensions", "user")
_IMAGE_PARAMS = ("model", "prompt", "n", "size", "response_format", "user")
_SPEECH_PARAMS = ("model", "input", "voice", "response_format", "speed")
_WHISPER_PARAMS = ("model", "file", "language", "prompt", "response_format", "temperature")
_SPHINX_PARAMS = ("model", "file", "language", "response_format")

#: engine name -> {operation: supported OpenAI parameters}
ENGINES: dict[str, dict[Operation, tuple[str, ...]]] = {
    # The request path converts a Responses request to a chat body before it checks it, so both share one list.
    "llama_cpp": {"chat.completions": _CHAT_PARAMS, "responses": _CHAT_PARAMS},
    "onnx_embeddings": {"embeddings": _EMBEDDING_PARAMS},
    "piper": {"audio.speech": _SPEECH_PARAMS},
    "flite": {"audio.speech": _SPEECH_PARAMS},
    "whisper": {"audio.transcriptions": _WHISPER_PARAMS},
    "pocketsphinx": {"audio.transcriptions": _SPHINX_PARAMS},
    "digits_diffusion": {"images.generate": _IMAGE_PARAMS},
}

_PROBE_SENTENCE = "The quick brown fox jumps over the lazy dog."
_PROBE_MAX_WER = 0.5
_PROBE_TAKES = 3


@dataclass(frozen=True)
class EngineInfo:
    """What an embedded deployment offers, known from its config alone (nothing loads)."""

    engine: str
    operations: tuple[Operation, ...]
    params: dict[Operation, tuple[str, ...]]
    voices: tuple[str, ...] = ()


def _engine_name(table: Mapping[str, Any]) -> str:
    engine = table.get("engine")
    if engine not in ENGINES:
        raise ValueError(f"embedded engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    return str(engine)


def describe(table: Mapping[str, Any]) -> EngineInfo:
    """Operations (the table's, checked against the engine's), supported params, voices."""
    engine = _engine_name(table)
    supported = ENGINES[engine]
    wanted = table.get("operations")
    if wanted is None:
        operations = tuple(supported)
    else:
        if not isinstance(wanted, list | tuple) or not wanted:
            raise ValueError("operations must be a non-empty list")
        unknown = [op for op in wanted if op not in supported]
        if unknown:
            raise ValueError(f"engine {engine!r} cannot serve {unknown}; it serves {list(supported)}")
        operations = tuple(wanted)
    voices: tuple[str, ...] = ()
    if engine == "piper":
        voices = (str(table.get("voice", "joe")),)
    elif engine == "flite":
        voices = tuple(table.get("voices", ("slt", "kal", "kal16", "awb", "rms")))
    return EngineInfo(engine, operations, {op: supported[op] for op in operations}, voices)


def create_embedded_backend(deployment_id: str, table: Mapping[str, Any]) -> EmbeddedBackend:
    """Build the deployment's engine; its workers start loading models at once, off the event loop."""
    info = describe(table)
    options = EngineOptions(deployment_id, table)
    backend = EmbeddedBackend(deployment_id, info, options)
    backend.engine.pool.start()
    return backend


def _unsupported(deployment_id: str, operation: str) -> errors.GatewayError:
    return errors.invalid_request(
        f"Deployment {deployment_id!r} does not serve {operation}.", code="unsupported_operation", param="model"
    )


@dataclass
class EmbeddedBackend:
    """One embedded deployment: its engine, and the operations it may be asked for."""

    deployment_id: str
    info: EngineInfo
    options: EngineOptions
    engine: Any = field(init=False)

    def __post_init__(self) -> None:
        makers: dict[str, Callable[[str, EngineOptions], Any]] = {
            "llama_cpp": LlamaChatEngine,
            "onnx_embeddings": EmbeddingsEngine,
            "piper": PiperEngine,
            "flite": FliteEngine,
            "whisper": WhisperEngine,
            "pocketsphinx": PocketSphinxEngine,
            "digits_diffusion": DigitsDiffusionEngine,
        }
        self.engine = makers[self.info.engine](self.deployment_id, self.options)

    @property
    def voices(self) -> tuple[str, ...]:
        return self.info.voices

    def _require(self, *operations: Operation) -> None:
        if not any(op in self.info.operations for op in operations):
            raise _unsupported(self.deployment_id, operations[0])

    # -- the Backend protocol -------------------------------------------------------

    async def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._require("chat.completions", "responses")
        result: dict[str, Any] = await self.engine.complete(body)
        return result

    def chat_stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatChunk]:
        self._require("chat.completions", "responses")
        stream: AsyncIterator[ChatChunk] = self.engine.stream(body)
        return stream

    async def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._require("embeddings")
        result: dict[str, Any] = await self.engine.embed(body)
        return result

    async def images(self, body: Mapping[str, Any]) -> GeneratedImages:
        self._require("images.generate")
        result: GeneratedImages = await self.engine.generate(body)
        return result

    async def speech(self, body: Mapping[str, Any]) -> AudioResult:
        self._require("audio.speech")
        result: AudioResult = await self.engine.speak(body)
        return result

    async def transcribe(self, upload: TranscriptionInput) -> dict[str, Any]:
        self._require("audio.transcriptions")
        result: dict[str, Any] = await self.engine.transcribe(upload)
        return result

    async def verify(self, operations: Sequence[Operation]) -> list[ProbeResult]:
        """Load the models, then one real request per operation."""
        started = time.perf_counter()
        try:
            await self.engine.pool.ready()
        except Exception as exc:
            message = f"engine failed to load: {exc}"
            return [ProbeResult(op, False, message, _ms(started)) for op in operations]
        results = []
        for operation in operations:
            probe = _PROBES.get(operation)
            began = time.perf_counter()
            if probe is None or operation not in self.info.operations:
                results.append(ProbeResult(operation, False, f"{self.info.engine} does not serve {operation}"))
                continue
            try:
                message, details = await probe(self)
            except errors.GatewayError as exc:
                results.append(ProbeResult(operation, False, exc.message, _ms(began)))
            except Exception as exc:
                results.append(ProbeResult(operation, False, f"{type(exc).__name__}: {exc}", _ms(began)))
            else:
                ok = not message
                results.append(ProbeResult(operation, ok, message or "ok", _ms(began), details))
        return results

    async def aclose(self) -> None:
        await self.engine.pool.aclose()


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 2)


# -- verification probes: each returns ("" when it passed, else why; details) ----------------

_Probe = Callable[[EmbeddedBackend], Awaitable[tuple[str, dict[str, Any]]]]


async def _probe_chat(backend: EmbeddedBackend) -> tuple[str, dict[str, Any]]:
    body = {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1, "temperature": 0}
    answer = await backend.chat(body)
    usage = answer.get("usage", {})
    if usage.get("completion_tokens") != 1 or not answer.get("choices"):
        return f"a 1-token chat returned {usage}", {}
    return "", {"usage": usage}


async def _probe_embeddings(backend: EmbeddedBackend) -> tuple[str, dict[str, Any]]:
    answer = await backend.embeddings({"input": "verification probe"})
    vector = np.asarray(answer["data"][0]["embedding"], dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    if vector.size == 0 or abs(norm - 1.0) > 1e-3:
        return f"an embedding had {vector.size} dimensions and norm {norm:.4f}", {}
    return "", {"dimensions": int(vector.size)}


async def _probe_speech(backend: EmbeddedBackend) -> tuple[str, dict[str, Any]]:
    return await judge_speech(lambda: backend.speech({"input": _PROBE_SENTENCE, "response_format": "wav"}))


async def judge_speech(speak: Callable[[], Awaitable[AudioResult]]) -> tuple[str, dict[str, Any]]:
    """Whether ``speak()`` says the probe sentence audibly enough for an ASR engine to hear it.

    A sampling voice (Piper draws fresh noise on every call) now and then slurs a take: one in 60 of
    piper-joe's was heard at a word error rate over 0.5. So a voice is judged on its best of
    ``_PROBE_TAKES`` takes; a silent take is not sampling noise and fails at once.
    """
    closest = (float("inf"), "")
    for take in range(1, _PROBE_TAKES + 1):
        audio = await speak()
        decoded = await asyncio.to_thread(decode_audio, audio.content, max_seconds=60)
        rms = float(np.sqrt(np.mean(decoded.samples**2)))
        if rms < 0.01:
            return f"the speech is silent (rms {rms:.4f})", {}
        try:
            transcript = await asyncio.to_thread(_probe_transcriber().transcribe, audio.content)
        except (ImportError, OSError, RuntimeError, ValueError) as exc:
            # No ASR engine to listen with: the speech decoded and is not silent, which is what can be checked.
            return "", {"seconds": round(audio.seconds, 2), "rms": round(rms, 4), "not_transcribed": str(exc)[:200]}
        wer = word_error_rate(_PROBE_SENTENCE, transcript)
        if wer <= _PROBE_MAX_WER:
            return "", {"seconds": round(audio.seconds, 2), "transcript": transcript, "wer": round(wer, 3),
                        "takes": take}
        closest = min(closest, (wer, transcript))
    wer, transcript = closest
    return (f"speech of {_PROBE_SENTENCE!r} was not understood in {_PROBE_TAKES} takes; the closest was "
            f"transcribed as {transcript!r} (WER {wer:.2f})"), {}


async def _probe_transcription(backend: EmbeddedBackend) -> tuple[str, dict[str, Any]]:
    try:
        wav = await asyncio.to_thread(_probe_speaker().speak, _PROBE_SENTENCE)
    except (OSError, RuntimeError, ValueError, errors.GatewayError) as exc:
        # No speech engine to make the sentence: a tone must still decode and transcribe without error.
        answer = await backend.transcribe(_upload(_tone_wav()))
        if not isinstance(answer.get("text"), str):
            return f"a tone was transcribed as {answer!r}", {}
        return "", {"not_spoken": str(exc)[:200]}
    answer = await backend.transcribe(_upload(wav))
    wer = word_error_rate(_PROBE_SENTENCE, str(answer.get("text", "")))
    if wer > _PROBE_MAX_WER:
        return f"{_PROBE_SENTENCE!r} was transcribed as {answer.get('text')!r} (WER {wer:.2f})", {}
    return "", {"text": answer.get("text"), "wer": round(wer, 3)}


def _upload(wav: bytes) -> TranscriptionInput:
    return TranscriptionInput(wav, "probe.wav", "audio/wav", {"response_format": "json"}, b"", "")


def _tone_wav() -> bytes:
    from ..engines.audio_codecs import encode_speech

    t = np.arange(16_000) / 16_000.0
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    return encode_speech(tone, 16_000, "wav").content


async def _probe_images(backend: EmbeddedBackend) -> tuple[str, dict[str, Any]]:
    answer = await backend.images({"prompt": "a handwritten 3", "n": 1, "size": "64x64"})
    pixels = decode_png(answer.as_png(0))
    if pixels.shape != (64, 64) or int(pixels.max()) - int(pixels.min()) < 64:
        return f"the image is {pixels.shape} with contrast {int(pixels.max()) - int(pixels.min())}", {}
    return "", {"size": "64x64"}


_PROBES: dict[Operation, _Probe] = {
    "chat.completions": _probe_chat,
    "responses": _probe_chat,
    "embeddings": _probe_embeddings,
    "audio.speech": _probe_speech,
    "audio.transcriptions": _probe_transcription,
    "images.generate": _probe_images,
}


class _ProbeTranscriber:
    """PocketSphinx, loaded once per process, to hear what a TTS probe said."""

    def __init__(self) -> None:
        self._engine = PocketSphinxEngine("probe-asr", EngineOptions("probe-asr", {}))
        self._decoder: Any = None
        self._lock = threading.Lock()

    def transcribe(self, wav: bytes) -> str:
        with self._lock:
            if self._decoder is None:
                self._decoder = self._engine.load_model()
            audio = decode_audio(wav, max_seconds=60)
            result = self._engine.run(self._decoder, audio, TranscriptionRequest(None, None, "json", 0.0))
        return str(result["text"])


class _ProbeSpeaker:
    """Flite (no model to load), to make the spoken sentence an ASR probe transcribes."""

    def __init__(self) -> None:
        self._engine = FliteEngine("probe-tts", EngineOptions("probe-tts", {}))
        self._binary: str | None = None

    def speak(self, text: str) -> bytes:
        if self._binary is None:
            self._binary = self._engine.load_model()
        return self._engine.synthesize(self._binary, SpeechRequest(text, "slt", "wav", 1.0)).content


_probe_lock = threading.Lock()
_probe_asr: list[_ProbeTranscriber] = []
_probe_tts: list[_ProbeSpeaker] = []


def _probe_transcriber() -> _ProbeTranscriber:
    with _probe_lock:
        if not _probe_asr:
            _probe_asr.append(_ProbeTranscriber())
        return _probe_asr[0]


def _probe_speaker() -> _ProbeSpeaker:
    with _probe_lock:
        if not _probe_tts:
            _probe_tts.append(_ProbeSpeaker())
        return _probe_tts[0]
