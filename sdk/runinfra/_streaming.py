"""Server-sent events: a byte-level parser and ``RunInfraStream``, the iterator helpers return.

The parser follows the WHATWG event-stream rules (``\\r\\n``, ``\\n`` or ``\\r`` line ends,
``data`` lines joined by ``\\n``, one optional space after the colon, comments ignored, an
event dispatched at a blank line only when it has data) over arbitrary chunk boundaries.
"""

from __future__ import annotations

from ._errors import RunInfraConnectionError, RunInfraStreamParseError, redact_decoded

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Dict, Iterable, Iterator, Optional, Tuple

__all__ = ["RunInfraStream", "iter_json_events", "iter_sse"]

if TYPE_CHECKING:
    ServerSentEvent = Tuple[Optional[str], bytes]  # (event name or None, data)
_DONE = b"[DONE]"
# One event (its lines so far) may not grow past this: a server that never ends a line or an
# event must not exhaust the client's memory. Real events are a few hundred bytes.
MAX_EVENT_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


def _parse_error(message: str, request_id: Optional[str]) -> RunInfraStreamParseError:
    return RunInfraStreamParseError(message, request_id=request_id)


def iter_sse(chunks: Iterable[bytes], request_id: Optional[str] = None) -> Iterator[ServerSentEvent]:
    """Yield ``(event, data)`` for each dispatched event in a byte stream.

    A stream that ends inside an event (data without the closing blank line) is an error,
    except for a bare final ``data: [DONE]`` line.
    """
    pending = b""  # an incomplete last line
    skip_lf = False  # the previous chunk ended with "\r": a leading "\n" belongs to it
    first = True
    event: Optional[str] = None
    data: Optional[bytes] = None
    for chunk in chunks:
        if not chunk:
            continue
        if skip_lf:
            skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    continue
        if pending:
            chunk = pending + chunk
        if first:
            if len(chunk) < 3 and _BOM.startswith(chunk):
                pending = chunk  # a byte-order mark split across chunks
                continue
            first = False
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                skip_lf = True
                chunk = chunk[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\n"
            else:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        pending = lines.pop()
        if len(pending) > MAX_EVENT_BYTES:
            raise _parse_error(f"an SSE line is longer than {MAX_EVENT_BYTES} bytes", request_id)
        for line in lines:
            if not line:
                if data:
                    yield event, data
                event = None
                data = None
            elif line[:5] == b"data:":
                value = line[6:] if line[5:6] == b" " else line[5:]
                data = value if data is None else data + b"\n" + value
                if len(data) > MAX_EVENT_BYTES:
                    raise _parse_error(f"an SSE event is longer than {MAX_EVENT_BYTES} bytes", request_id)
            elif line[:1] == b":":
                continue
            else:
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data = value if data is None else data + b"\n" + value
                elif name == b"event":
                    try:
                        event = value.decode("utf-8")
                    except UnicodeDecodeError:
                        raise _parse_error("an SSE event name is not valid UTF-8", request_id) from None
                # "id", "retry" and unknown fields do not change what the SDK yields.
    if pending and not first:
        if pending[:5] == b"data:" and data is None and pending[5:].strip() == _DONE:
            yield event, _DONE
            return
        raise _parse_error("the event stream ended in the middle of a line", request_id)
    if data:
        if data == _DONE:
            yield event, data
            return
        raise _parse_error("the event stream ended in the middle of an event", request_id)


def iter_json_events(
    events: Iterable[ServerSentEvent],
    request_id: Optional[str],
    raise_error: Callable[[Dict[str, Any], Optional[str]], None],
    *,
    remainder: Optional[Iterator[bytes]] = None,
    close_body: Callable[[], None] = lambda: None,
    secret: Optional[bytes] = None,
    final_types: Collection[str] = (),
) -> Iterator[Dict[str, Any]]:
    """Decode each event's data as a JSON object; stop at ``[DONE]``.

    An ``error`` object in the stream (``{"error": {...}}`` or a ``type: "error"`` event) is
    handed to ``raise_error``, which raises the typed gateway error. After ``[DONE]`` the
    rest of the body (``remainder``) is drained so its connection can be reused; on any
    early exit ``close_body`` releases it. ``secret`` is redacted from frames (a server
    echoing a key back must not put it in the caller's objects). The stream must end at
    ``[DONE]`` or after an event of one of ``final_types``: a body that ends cleanly sooner
    was cut, and reading it as a complete answer would hide that.
    """
    from ._json import decode_json as loads

    secret_text = secret.decode("ascii") if secret else None
    complete = False
    try:
        for event, data in events:
            if data == _DONE:
                if remainder is not None:
                    for _ in remainder:
                        pass
                return
            if secret and secret in data:
                data = data.replace(secret, b"[REDACTED]")
            try:
                payload = loads(data)
            except ValueError:
                raise _parse_error("an SSE data frame is not valid JSON", request_id) from None
            if secret_text and b"\\" in data:  # an escaped key slips past the byte replacement above
                payload = redact_decoded(payload, secret_text)
            if type(payload) is not dict:
                raise _parse_error("an SSE data frame is not a JSON object", request_id)
            # "error": null is not an error: some engines send it on every chunk.
            if payload.get("error") is not None or event == "error" or payload.get("type") == "error":
                error = payload.get("error")
                raise_error(error if isinstance(error, dict) else payload, event)
            if not complete:
                kind = payload.get("type")
                complete = isinstance(kind, str) and kind in final_types
            yield payload
        if not complete:
            raise RunInfraConnectionError("the event stream ended before its final event", request_id=request_id)
    finally:
        close_body()


class RunInfraStream:
    """An iterator over a streamed response's JSON events, with its ``request_id``.

    Read to its end, it hands its connection back for reuse; ``close()`` (or leaving a
    ``with`` block, or closing the iterator) before the end closes the connection.
    """

    __slots__ = ("_close_body", "_events", "_next", "request_id")

    def __init__(
        self,
        events: Iterator[Dict[str, Any]],
        request_id: Optional[str],
        close_body: Callable[[], None],
    ) -> None:
        self._events = events
        self._next = events.__next__
        self._close_body = close_body
        self.request_id = request_id

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        # The event generator itself: ``for`` loops skip a Python-level __next__ per event,
        # and ``iter(stream).close()`` stops the stream and releases its connection.
        return self._events

    def __next__(self) -> Dict[str, Any]:
        return self._next()

    def close(self) -> None:
        """Stop the stream and release its connection (safe to call more than once)."""
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            self._close_body()

    def __enter__(self) -> RunInfraStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunInfraStream(request_id={self.request_id!r})"
