"""The co-located voice pipeline: audio -> transcript -> LLM answer -> speech.

The three stages are ordinary deployments (embedded or upstream) reached
through the :class:`~runinfra_gateway.backends.base.Backend` seam, one after
the other in this process, so nothing leaves the machine between them. The
answer is the DESIGN.md envelope with the transcript, the reply text, the
reply audio (base64), per-stage timings and usage; the second value returned
is the usage of each stage, which the request path prices stage by stage.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from . import errors
from .backends.base import Backend, TranscriptionInput
from .billing import reported_seconds
from .engines.audio_codecs import decode_audio

__all__ = ["DEFAULT_SYSTEM_PROMPT", "StageUsage", "run_voice_pipeline"]

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Answer the spoken question in one or two short sentences of plain text."
)
_MAX_SPEECH_CHARS = 4096
_MIME = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")

#: stage name -> usage fields named as billing's ``Usage`` names them.
StageUsage = dict[str, dict[str, float]]

_EXTENSIONS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
}


def _multipart(fields: Mapping[str, str], filename: str, content_type: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body, so an upstream speech-to-text stage receives what a client would send."""
    boundary = "runinfra-" + secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _upload(model: str, response_format: str, filename: str, mime: str, audio: bytes) -> TranscriptionInput:
    fields = {"model": model, "response_format": response_format}
    raw_body, raw_type = _multipart(fields, filename, mime, audio)
    return TranscriptionInput(audio, filename, mime, fields, raw_body, raw_type)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000.0, 2)


async def run_voice_pipeline(
    stt: Backend,
    llm: Backend,
    tts: Backend,
    audio: bytes,
    mime_type: str,
    *,
    stt_model: str,
    llm_model: str,
    tts_model: str,
    voice: str | None = None,
    response_format: str = "wav",
    system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    max_tokens: int = 96,
    temperature: float = 0.2,
) -> tuple[dict[str, Any], StageUsage]:
    """Run the three stages; bad or speechless audio is a 400, a failing stage its own error."""
    if not audio:
        raise errors.invalid_request("The audio is empty.", param="file")
    mime = (mime_type or "").split(";")[0].strip().lower()
    if not _MIME.fullmatch(mime):
        mime = "application/octet-stream"
    started = time.perf_counter()

    # 1. speech -> text
    filename = f"speech.{_EXTENSIONS.get(mime, 'bin')}"
    stage = time.perf_counter()
    try:
        # verbose_json carries the duration, which the speech-to-text stage is priced by.
        heard = await stt.transcribe(_upload(stt_model, "verbose_json", filename, mime, audio))
    except errors.GatewayError as exc:
        if exc.param != "response_format":
            raise
        heard = await stt.transcribe(_upload(stt_model, "json", filename, mime, audio))
    stt_ms = _ms(stage)
    transcript = str(heard.get("text") or "").strip()
    if not transcript:
        raise errors.invalid_request("No speech was recognised in the audio.", param="file")
    reported = reported_seconds(heard.get("duration"))
    if reported:
        audio_in = reported
    else:  # an engine that does not say, or says what cannot be charged (-1, 1e308, "2"): measure it
        decoded = await asyncio.to_thread(decode_audio, audio, max_seconds=24 * 3600)
        audio_in = decoded.seconds

    # 2. text -> answer
    stage = time.perf_counter()
    answer = await llm.chat(
        {
            "model": llm_model,
            "messages": [{"role": "system", "content": system_prompt}, {"role": "user", "content": transcript}],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
    )
    llm_ms = _ms(stage)
    try:
        response_text = str(answer["choices"][0]["message"]["content"] or "").strip()
    except (KeyError, IndexError, TypeError):
        raise errors.deployment_error(f"The LLM stage {llm_model!r} returned no message.") from None
    if not response_text:
        raise errors.deployment_error(f"The LLM stage {llm_model!r} returned an empty answer.")
    usage = answer.get("usage") or {}
    input_tokens = int(usage.get("prompt_tokens") or 0)
    output_tokens = int(usage.get("completion_tokens") or 0)

    # 3. answer -> speech
    spoken = response_text[:_MAX_SPEECH_CHARS]
    speech_body: dict[str, Any] = {"model": tts_model, "input": spoken, "response_format": response_format}
    chosen_voice = voice or next(iter(getattr(tts, "voices", ()) or ()), None)
    if chosen_voice:
        speech_body["voice"] = chosen_voice
    stage = time.perf_counter()
    speech = await tts.speech(speech_body)
    tts_ms = _ms(stage)

    envelope = {
        "object": "voice.pipeline.response",
        "modality": "voice",
        "model": llm_model,
        "models": {"speech_to_text": stt_model, "llm": llm_model, "text_to_speech": tts_model},
        "transcript": transcript,
        "response_text": response_text,
        "audio_base64": base64.b64encode(speech.content).decode("ascii"),
        "content_type": speech.content_type,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_audio_seconds": round(audio_in, 3),
            "output_audio_seconds": round(speech.seconds, 3),
            "characters": len(spoken),
        },
        "latency_ms": {
            "speech_to_text": stt_ms,
            "llm": llm_ms,
            "text_to_speech": tts_ms,
            "total": _ms(started),
        },
    }
    stages: StageUsage = {
        "speech_to_text": {"audio_seconds": audio_in},
        "llm": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "text_to_speech": {"characters": len(spoken)},
    }
    return envelope, stages
