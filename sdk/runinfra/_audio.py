"""``AudioResponse``: what ``audio.speech.create`` returns."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Optional


__all__ = ["AudioResponse"]


class AudioResponse:
    """Binary audio from ``audio.speech.create``: its bytes, real content type and request id."""

    __slots__ = ("content", "content_type", "request_id")

    def __init__(self, content: bytes, content_type: str, request_id: Optional[str] = None) -> None:
        self.content = content
        self.content_type = content_type
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"AudioResponse(content=<{len(self.content)} bytes>, content_type={self.content_type!r}, "
            f"request_id={self.request_id!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AudioResponse):
            return NotImplemented
        return (self.content, self.content_type, self.request_id) == (
            other.content,
            other.content_type,
            other.request_id,
        )

    __hash__ = None  # type: ignore[assignment]

    def write_to(self, path: str) -> None:
        """Write the audio bytes to ``path``."""
        with open(path, "wb") as handle:
            handle.write(self.content)
