"""Holding back shaped bytes until the last chunk of a network read, so a read costs one write.

The upstream backend flags every chunk but the last of one read ``more_ready``
(see ``backends/_read_chunks.py``); the shapers give each chunk's bytes to a
:class:`ReadBatch`, which returns nothing until the read's last chunk and then
everything at once. Chunks without the flag (embedded engines) pass straight
through.
"""

from __future__ import annotations

from runinfra_gateway.backends.base import ChatChunk

__all__ = ["ReadBatch"]


class ReadBatch:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def add(self, chunk: ChatChunk, out: bytes) -> bytes:
        """``out`` (the bytes shaped from ``chunk``) and any held before it, or ``b""`` while the read goes on."""
        if getattr(chunk, "more_ready", False):
            self._parts.append(out)
            return b""
        if self._parts:
            self._parts.append(out)
            out = b"".join(self._parts)
            self._parts.clear()
        return out

    def drain(self) -> bytes:
        """Whatever is still held (the stream ended inside a read)."""
        out = b"".join(self._parts)
        self._parts.clear()
        return out
