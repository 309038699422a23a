"""The backend seam: what the request path asks of a deployment.

A backend is an embedded engine running in-process (off the event loop) or an
upstream OpenAI-compatible engine reached over HTTP. The request path has
already authenticated, routed, validated parameters and taken a credit hold
before it calls one of these methods; the backend only computes. Bodies are
OpenAI-shaped dicts (``model`` already set to the name the engine expects), so
an upstream backend can forward them as they are.

Failures are raised as :class:`runinfra_gateway.errors.GatewayError`
(``deployment_error`` with status 502/503/504; 503 with ``retry_after_seconds``
when a bounded queue is full).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, AsyncIterator, Mapping, Protocol, Sequence

import orjson

__all__ = [
    "OPERATIONS",
    "AudioResult",
    "Backend",
    "ChatChunk",
    "GeneratedImages",
    "Operation",
    "ProbeResult",
    "TranscriptionInput",
]

#: An operation name, spelled as the SDK spells it (DESIGN.md, "operations").
Operation = str

OPERATIONS: tuple[Operation, ...] = (
    "chat.completions",
    "responses",
    "embeddings",
    "images.generate",
    "audio.speech",
    "audio.transcriptions",
)


@dataclass(frozen=True)
class ChatChunk:
    """One ``chat.completion.chunk`` as JSON bytes, parsed only when needed.

    Upstream backends pass the engine's bytes through untouched, so relaying a
    stream costs no re-encoding; the request path reads :attr:`data` only where
    it must (usage, the Responses adapter).
    """

    payload: bytes

    @cached_property
    def data(self) -> dict[str, Any]:
        value = orjson.loads(self.payload)
        if not isinstance(value, dict):
            raise ValueError("a chat.completion.chunk must be a JSON object")
        return value

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChatChunk:
        return cls(orjson.dumps(data))


@dataclass(frozen=True)
class AudioResult:
    """Synthesised speech: encoded bytes, their real MIME type and duration."""

    content: bytes
    content_type: str
    seconds: float


@dataclass(frozen=True)
class GeneratedImages:
    """PNGs a backend generated, each as the backend had it: raw bytes or base64 text.

    An in-process engine has bytes, an HTTP engine sends base64. The request
    path converts only to the form the client asked for (``url`` serves bytes,
    ``b64_json`` sends text), so an image is never encoded only to be decoded.
    """

    created: int
    images: Sequence[bytes | str]

    def as_png(self, index: int) -> bytes:
        """Image ``index`` as PNG bytes; ``ValueError`` if its base64 text is malformed."""
        image = self.images[index]
        return image if isinstance(image, bytes) else base64.b64decode(image, validate=True)

    def as_base64(self, index: int) -> str:
        """Image ``index`` as base64 text (what ``b64_json`` carries)."""
        image = self.images[index]
        return image if isinstance(image, str) else base64.b64encode(image).decode("ascii")


@dataclass(frozen=True)
class TranscriptionInput:
    """A parsed ``/audio/transcriptions`` upload.

    ``raw_body`` and ``raw_content_type`` keep the client's multipart body
    byte-for-byte so an upstream backend can forward it unchanged.
    """

    file: bytes
    filename: str
    file_content_type: str
    fields: Mapping[str, str]
    raw_body: bytes
    raw_content_type: str


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one verification probe of one operation."""

    operation: Operation
    ok: bool
    message: str = ""
    latency_ms: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A deployment's compute. Only the methods of its declared operations are called."""

    async def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A non-streaming ``chat.completion`` JSON object (with ``usage``)."""
        ...

    def chat_stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatChunk]:
        """``chat.completion.chunk`` objects in order; closing the iterator early cancels the generation.

        The request path always asks for ``stream_options.include_usage`` so the
        last chunk carries ``usage`` (it strips that chunk when the client did
        not ask for it).
        """
        ...

    async def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAI embeddings list with float vectors and ``usage``."""
        ...

    async def images(self, body: Mapping[str, Any]) -> GeneratedImages:
        """The PNGs (``body["response_format"]`` is ignored: the request path shapes the answer)."""
        ...

    async def speech(self, body: Mapping[str, Any]) -> AudioResult:
        """Encoded speech in ``body["response_format"]``."""
        ...

    async def transcribe(self, upload: TranscriptionInput) -> dict[str, Any]:
        """``{"text"}``, or the verbose_json shape with ``language``, ``duration``, ``segments``."""
        ...

    async def verify(self, operations: Sequence[Operation]) -> list[ProbeResult]:
        """Run one real probe per operation; a deployment is active only when all pass."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and models."""
        ...
