"""The parts of a speech request every TTS engine reads the same way."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import errors
from . import _params
from .audio_codecs import speech_formats

__all__ = ["SpeechRequest", "speech_pieces"]

MAX_INPUT_CHARS = 4096


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    voice: str
    response_format: str
    speed: float

    @classmethod
    def parse(cls, body: Mapping[str, Any], *, voices: tuple[str, ...], default_voice: str) -> SpeechRequest:
        for field in ("ref_audio", "ref_text", "task_type"):
            if body.get(field) is not None:
                raise errors.GatewayError(
                    400,
                    "invalid_request_error",
                    f"{field!r}: this deployment speaks with named voices ({', '.join(voices)}), not reference audio.",
                    code="unsupported_parameter",
                    param=field,
                )
        voice = body.get("voice")
        if voice is None:
            voice = default_voice
        if not isinstance(voice, str) or voice not in voices:
            raise errors.invalid_request(
                f"'voice' must be one of this deployment's voices: {', '.join(voices)}.", param="voice"
            )
        return cls(
            text=_speakable(_params.required_text(body, "input", max_chars=MAX_INPUT_CHARS)),
            voice=voice,
            response_format=_params.choice(body, "response_format", "mp3", speech_formats()),
            speed=_params.number(body, "speed", 1.0, low=0.25, high=4.0),
        )


def _speakable(text: str) -> str:
    """Control characters (NUL and friends) have no sound and break C text APIs: they become spaces."""
    return "".join(" " if unicodedata.category(ch) == "Cc" and ch not in "\n\t" else ch for ch in text)


_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:\u2014\u2013](?=\s)")  # em and en dashes too
_SPACE = re.compile(r"\s")


def speech_pieces(text: str, max_chars: int) -> list[str]:
    """``text`` cut into pieces of at most ``max_chars``: after a sentence where one ends, else after a clause,
    else between words, else anywhere. Pieces hold whole sentences whenever those are short enough."""
    pieces = []
    rest = text.strip()
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = max_chars
        for boundary in (_SENTENCE_END, _CLAUSE_END, _SPACE):
            ends = [match.end() for match in boundary.finditer(window)]
            if ends:
                cut = ends[-1]
                break
        piece, rest = rest[:cut].strip(), rest[cut:].lstrip()
        if piece:
            pieces.append(piece)
    if rest:
        pieces.append(rest)
    return pieces
