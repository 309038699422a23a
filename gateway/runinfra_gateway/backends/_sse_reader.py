"""An incremental parser for the server-sent events an upstream engine streams.

Bytes arrive in arbitrary pieces (an event split across reads, several events
in one read, a CRLF split between two reads); :meth:`SSEReader.feed` returns
the ``data`` payloads of every event completed so far. Comment lines (``:``
keepalives) and the ``event``/``id``/``retry`` fields are skipped; multi-line
``data`` is joined with ``\\n`` as the SSE specification says. The common case,
a single ``data: {...}`` line with LF endings, takes a fast path without
splitting lines.
"""

from __future__ import annotations

__all__ = ["SSEOverflow", "SSEReader"]


class SSEOverflow(ValueError):
    """An event grew past the size limit without ending."""


class SSEReader:
    """Feed it bytes, get complete event payloads back."""

    def __init__(self, *, max_event_bytes: int = 8 * 1024 * 1024) -> None:
        self._buffer = b""
        self._cr_pending = False
        self._max_event_bytes = max_event_bytes

    def feed(self, data: bytes) -> list[bytes]:
        if self._cr_pending:
            data = b"\r" + data
            self._cr_pending = False
        if b"\r" in data:
            if data.endswith(b"\r"):
                # Might be the first half of a CRLF; decide when the next piece arrives.
                data = data[:-1]
                self._cr_pending = True
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer + data if self._buffer else data
        if b"\n\n" not in buffer:
            self._buffer = buffer
            if len(buffer) > self._max_event_bytes:
                raise SSEOverflow(f"an upstream event exceeded {self._max_event_bytes} bytes")
            return []
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()  # the incomplete tail, if any
        if len(self._buffer) > self._max_event_bytes:
            raise SSEOverflow(f"an upstream event exceeded {self._max_event_bytes} bytes")
        payloads: list[bytes] = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block:
                payloads.append(block[6:])
            else:
                payload = _event_data(block)
                if payload is not None:
                    payloads.append(payload)
        return payloads

    def close(self) -> list[bytes]:
        """The stream ended: a last event missing its blank line still counts if it is complete lines."""
        rest = self._buffer
        self._buffer = b""
        self._cr_pending = False
        if not rest.strip(b"\n"):
            return []
        payload = _event_data(rest.rstrip(b"\n")) if rest.endswith(b"\n") else None
        return [] if payload is None else [payload]


def _event_data(block: bytes) -> bytes | None:
    """The joined ``data`` of one event block (lines without the blank line), or None when it has none."""
    if block.startswith(b"data: ") and b"\n" not in block:
        return block[6:]
    lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if field != b"data":
            continue
        lines.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(lines) if lines else None
