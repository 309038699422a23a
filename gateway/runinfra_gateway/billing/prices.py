"""Per-deployment prices, usage, and exact integer charges in micro-cents.

Prices come from a deployment's ``[deployments.prices]`` table in cents (fractional
allowed). Each rate is stored as an integer number of micro-cents per 1,000 units
(tokens, characters, images, audio seconds), so every charge is integer arithmetic:
a request's total is summed exactly and rounded up to the next micro-cent once.
A price finer than one micro-cent per 1,000 units is refused rather than rounded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from runinfra_gateway.real_numbers import is_finite_number

__all__ = [
    "DEFAULT_OUTPUT_TOKEN_CAP",
    "MICROCENTS_PER_CENT",
    "MIN_AUDIO_BYTES_PER_SECOND",
    "Prices",
    "Usage",
    "cents_to_microcents",
    "estimate_usage",
    "microcents_to_cents",
]

MICROCENTS_PER_CENT = 1_000_000

#: Output tokens assumed for the hold when a request sets no max_tokens.
DEFAULT_OUTPUT_TOKEN_CAP = 4096

#: The lowest byte rate audio we accept could have (6 kbit/s Opus): an upload of N bytes
#: lasts at most N / 750 seconds, which bounds a transcription's hold from its size alone.
MIN_AUDIO_BYTES_PER_SECOND = 750

#: Tokens a chat template adds around each message (role markers, separators): generous.
_TOKENS_PER_MESSAGE = 8
_TOKENS_PER_REQUEST = 16

_PRICE_KEYS = ("input_per_1k_tokens", "output_per_1k_tokens", "per_image", "per_audio_second", "per_1k_characters")
_PER_UNIT_KEYS = frozenset({"per_image", "per_audio_second"})
# Cents are scaled to micro-cents per 1,000 units: x1e6 for per-1k prices, x1e9 for per-unit prices.
_SCALE = {key: Decimal(MICROCENTS_PER_CENT * (1000 if key in _PER_UNIT_KEYS else 1)) for key in _PRICE_KEYS}
_MAX_PRICE_CENTS = Decimal(10) ** 9


def cents_to_microcents(cents: float | int | Decimal, *, what: str = "cents") -> int:
    """Exact micro-cents for an amount in cents; refuses non-numbers and amounts finer than a micro-cent."""
    scaled = _decimal(cents, what) * MICROCENTS_PER_CENT
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{what}: {cents!r} is finer than one micro-cent (1e-6 cent)")
    return int(scaled)


def microcents_to_cents(microcents: int) -> float:
    """Cents for display in the API (the ledger itself never leaves integers)."""
    return microcents / MICROCENTS_PER_CENT


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"{what}: expected a number, got {type(value).__name__}")
    # str() of a float is its shortest round-trip spelling: 0.1 becomes Decimal("0.1"), not 0.1000000000000000055...
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


@dataclass(frozen=True)
class Usage:
    """What a request actually consumed, as the backend reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0


@dataclass(frozen=True)
class Prices:
    """A deployment's rates, each in integer micro-cents per 1,000 units."""

    input_per_1k_tokens: int = 0
    output_per_1k_tokens: int = 0
    per_1k_images: int = 0
    per_1k_audio_seconds: int = 0
    per_1k_characters: int = 0

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> Prices:
        """Parse ``[deployments.prices]`` (cents); raises ValueError naming the bad key."""
        if table is None:
            return cls()
        if not isinstance(table, Mapping):
            raise ValueError(f"prices: expected a table, got {type(table).__name__}")
        rates: dict[str, int] = {}
        for key, value in table.items():
            if key not in _SCALE:
                raise ValueError(f"prices.{key}: unknown price (known: {', '.join(_PRICE_KEYS)})")
            cents = _decimal(value, f"prices.{key}")
            if cents < 0:
                raise ValueError(f"prices.{key}: must not be negative, got {value!r}")
            if cents > _MAX_PRICE_CENTS:
                raise ValueError(f"prices.{key}: {value!r} is implausibly large")
            scaled = cents * _SCALE[key]
            if scaled != scaled.to_integral_value():
                raise ValueError(f"prices.{key}: {value!r} is finer than one micro-cent per 1,000 units")
            rates[key] = int(scaled)
        return cls(
            input_per_1k_tokens=rates.get("input_per_1k_tokens", 0),
            output_per_1k_tokens=rates.get("output_per_1k_tokens", 0),
            per_1k_images=rates.get("per_image", 0),
            per_1k_audio_seconds=rates.get("per_audio_second", 0),
            per_1k_characters=rates.get("per_1k_characters", 0),
        )

    @property
    def is_free(self) -> bool:
        return not (
            self.input_per_1k_tokens
            or self.output_per_1k_tokens
            or self.per_1k_images
            or self.per_1k_audio_seconds
            or self.per_1k_characters
        )

    def charge_microcents(self, operation: str, usage: Usage) -> int:
        """The exact charge for ``usage``, rounded up to a whole micro-cent once per request."""
        if operation not in _ESTIMATORS:
            raise ValueError(f"unknown operation {operation!r}")
        if usage.input_tokens < 0 or usage.output_tokens < 0 or usage.images < 0 or usage.characters < 0:
            raise ValueError(f"usage must not be negative: {usage!r}")
        seconds = usage.audio_seconds
        if not 0 <= seconds < math.inf:  # also refuses NaN
            raise ValueError(f"usage.audio_seconds must be a finite number >= 0: {usage!r}")
        # Audio is counted in whole milliseconds (rounded up) so the sum stays integer;
        # round() first strips float noise such as 0.3 * 1000 == 300.00000000000006.
        audio_ms = math.ceil(round(seconds * 1000, 3)) if seconds else 0
        per_1k_units = (
            usage.input_tokens * self.input_per_1k_tokens
            + usage.output_tokens * self.output_per_1k_tokens
            + usage.images * self.per_1k_images
            + usage.characters * self.per_1k_characters
        )
        # micro-cents * 1e6 = per_1k_units * 1000 + audio_ms * per_1k_audio_seconds
        numerator = per_1k_units * 1000 + audio_ms * self.per_1k_audio_seconds
        return -(-numerator // 1_000_000)

    def estimate_microcents(self, operation: str, body: Mapping[str, Any]) -> int:
        """An upper bound on the charge of ``body``, used for the credit hold."""
        return self.charge_microcents(operation, estimate_usage(operation, body))


def _check_operation(operation: str) -> None:
    if operation not in _ESTIMATORS:
        raise ValueError(f"unknown operation {operation!r}")


def estimate_usage(operation: str, body: Mapping[str, Any]) -> Usage:
    """The most a request of ``operation`` with ``body`` can consume.

    Input tokens are bounded by the UTF-8 byte length of every string in the input
    (a BPE token covers at least one byte) plus template overhead; output tokens by
    ``max_tokens`` (or ``DEFAULT_OUTPUT_TOKEN_CAP``) times ``n``.
    """
    _check_operation(operation)
    return _ESTIMATORS[operation](body)


def _text_bytes(value: object, depth: int = 0) -> int:
    """UTF-8 bytes of every string (and one per integer token id) nested in ``value``."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if depth > 32:
        return 0
    items: Iterable[object]
    # Concrete types first: parsed JSON is dicts and lists, and the Mapping ABC check costs microseconds.
    if isinstance(value, dict):
        items = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, int):
        return 0 if isinstance(value, bool) else 1  # a pre-tokenized input: one token per id
    elif isinstance(value, Mapping):
        items = value.values()
    else:
        return 0
    total = 0
    for item in items:
        total += _text_bytes(item, depth + 1)
    return total


def _count(items: object) -> int:
    return len(items) if isinstance(items, (list, tuple)) else 1


def _positive_int(body: Mapping[str, Any], names: Iterable[str], default: int) -> int:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def _estimate_chat(body: Mapping[str, Any]) -> Usage:
    messages = body.get("messages", ())
    input_tokens = _text_bytes(messages) + _TOKENS_PER_MESSAGE * _count(messages) + _TOKENS_PER_REQUEST
    for extra in ("tools", "response_format"):  # schemas the template also renders into the prompt
        if extra in body:
            input_tokens += _text_bytes(body[extra])
    choices = _positive_int(body, ("n",), 1)
    output = _positive_int(body, ("max_completion_tokens", "max_tokens"), DEFAULT_OUTPUT_TOKEN_CAP)
    return Usage(input_tokens=input_tokens, output_tokens=output * choices)


def _estimate_responses(body: Mapping[str, Any]) -> Usage:
    given = body.get("input", "")
    input_tokens = _text_bytes(given) + _text_bytes(body.get("instructions", ""))
    input_tokens += _TOKENS_PER_MESSAGE * (_count(given) + 1) + _TOKENS_PER_REQUEST
    output = _positive_int(body, ("max_output_tokens",), DEFAULT_OUTPUT_TOKEN_CAP)
    return Usage(input_tokens=input_tokens, output_tokens=output)


def _estimate_embeddings(body: Mapping[str, Any]) -> Usage:
    given = body.get("input", "")
    # Each input gets its own [CLS]/[SEP] style markers.
    return Usage(input_tokens=_text_bytes(given) + 2 * _count(given))


def _estimate_images(body: Mapping[str, Any]) -> Usage:
    prompt_tokens = _text_bytes(body.get("prompt", "")) + _TOKENS_PER_REQUEST
    return Usage(input_tokens=prompt_tokens, images=_positive_int(body, ("n",), 1))


def _estimate_speech(body: Mapping[str, Any]) -> Usage:
    text = body.get("input", "")
    return Usage(characters=len(text) if isinstance(text, str) else _text_bytes(text))


def _estimate_transcription(body: Mapping[str, Any]) -> Usage:
    """Bound the audio length: a known duration, else the upload size at the lowest plausible bitrate."""
    duration = body.get("duration_seconds")
    if is_finite_number(duration):
        seconds = max(0.0, float(duration))
    else:
        upload = body.get("file")
        size = body.get("file_size_bytes")
        if isinstance(upload, (bytes, bytearray, memoryview)):
            size = len(upload)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            size = 0
        seconds = math.ceil(size / MIN_AUDIO_BYTES_PER_SECOND)
    prompt = _text_bytes(body.get("prompt", ""))
    # Speech runs well under 20 tokens a second, which bounds the transcript if output is priced.
    return Usage(audio_seconds=seconds, input_tokens=prompt, output_tokens=math.ceil(seconds * 20))


_ESTIMATORS = {
    "chat.completions": _estimate_chat,
    "responses": _estimate_responses,
    "embeddings": _estimate_embeddings,
    "images.generate": _estimate_images,
    "audio.speech": _estimate_speech,
    "audio.transcriptions": _estimate_transcription,
}
