"""The parts of a transcription request every ASR engine reads the same way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors
from ._options import EngineOptions
from ._params import valid_unicode
from .audio_codecs import DecodedAudio, decode_audio

__all__ = ["AudioLimits", "TranscriptionRequest", "transcription_body"]

_RESPONSE_FORMATS = ("json", "verbose_json")
_MAX_PROMPT_CHARS = 2000
_LANGUAGE_NAMES = {"en": "english"}


@dataclass(frozen=True)
class AudioLimits:
    """How much audio one request may bring: bytes uploaded and seconds once decoded."""

    max_upload_bytes: int
    max_audio_seconds: float

    @classmethod
    def from_options(cls, options: EngineOptions) -> AudioLimits:
        return cls(
            max_upload_bytes=options.integer("max_upload_bytes", 25 * 1024 * 1024),
            max_audio_seconds=options.number("max_audio_seconds", 1800.0, minimum=1.0),
        )

    def decode(self, data: bytes, *, param: str = "file") -> DecodedAudio:
        if len(data) > self.max_upload_bytes:
            raise errors.GatewayError(
                413,
                "invalid_request_error",
                f"The audio file is larger than this deployment's {self.max_upload_bytes}-byte limit.",
                code="request_too_large",
                param=param,
            )
        return decode_audio(data, max_seconds=self.max_audio_seconds, param=param)


@dataclass(frozen=True)
class TranscriptionRequest:
    language: str | None
    prompt: str | None
    response_format: str
    temperature: float

    @classmethod
    def parse(cls, fields: Mapping[str, str], *, languages: tuple[str, ...] | None) -> TranscriptionRequest:
        response_format = fields.get("response_format") or "json"
        if response_format not in _RESPONSE_FORMATS:
            raise errors.invalid_request(
                f"'response_format' must be json or verbose_json; got {response_format[:40]!r}.",
                param="response_format",
            )
        language = (fields.get("language") or "").strip().lower() or None
        if language is not None and languages is not None and language not in languages:
            raise errors.invalid_request(
                f"'language' {language[:20]!r} is not one this model transcribes ({', '.join(languages)}).",
                param="language",
            )
        prompt = fields.get("prompt") or None
        if prompt is not None:
            prompt = valid_unicode(prompt, "prompt")
        if prompt is not None and len(prompt) > _MAX_PROMPT_CHARS:
            raise errors.invalid_request(f"'prompt' is longer than {_MAX_PROMPT_CHARS} characters.", param="prompt")
        raw_temperature = fields.get("temperature") or "0"
        try:
            temperature = float(raw_temperature)
        except ValueError:
            raise errors.invalid_request("'temperature' must be a number.", param="temperature") from None
        if not 0.0 <= temperature <= 1.0:
            raise errors.invalid_request("'temperature' must be between 0 and 1.", param="temperature")
        return cls(language, prompt, response_format, temperature)


def transcription_body(
    request: TranscriptionRequest,
    *,
    text: str,
    language: str,
    duration: float,
    segments: list[dict[str, Any]],
) -> dict[str, Any]:
    """``{"text"}`` for json; OpenAI's verbose_json shape otherwise."""
    if request.response_format == "json":
        return {"text": text}
    return {
        "task": "transcribe",
        "language": _LANGUAGE_NAMES.get(language, language),
        "duration": round(duration, 3),
        "text": text,
        "segments": segments,
    }


