"""``RunInfraRequest`` and ``RunInfraResponse``: what crosses the ``transport=`` seam.

A transport is any callable taking a ``RunInfraRequest`` and returning a
``RunInfraResponse``. The default one is the pooled ``http.client`` transport; tests and
applications can pass their own.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator, Mapping, Optional, Union


__all__ = ["RunInfraRequest", "RunInfraResponse", "header_value"]

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})


class RunInfraRequest:
    """One HTTP request as the client hands it to a transport."""

    __slots__ = ("body", "headers", "method", "stream", "timeout_seconds", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Optional[bytes] = None,
        stream: bool = False,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.stream = stream
        self.timeout_seconds = timeout_seconds

    def __repr__(self) -> str:
        shown = {
            name: ("[REDACTED]" if name.lower() in _SECRET_HEADERS else value) for name, value in self.headers.items()
        }
        size = None if self.body is None else len(self.body)
        return (
            f"RunInfraRequest(method={self.method!r}, url={self.url!r}, headers={shown!r}, "
            f"body=<{size} bytes>, stream={self.stream!r}, timeout_seconds={self.timeout_seconds!r})"
        )


class RunInfraResponse:
    """One HTTP response: ``body`` is bytes, or an iterable of byte chunks for a stream."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: Union[bytes, Iterable[bytes]] = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"RunInfraResponse(status={self.status!r})"

    def header(self, name: str) -> Optional[str]:
        """A header's value by case-insensitive name."""
        return header_value(self.headers, name)

    def read(self) -> bytes:
        """The whole body (joins and consumes a streamed body)."""
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        try:
            data = b"".join(self.body)
        finally:
            self.close()
        self.body = data
        return data

    def json(self) -> Any:
        from ._json import decode_json

        return decode_json(self.read())

    def iter_bytes(self) -> Iterator[bytes]:
        if isinstance(self.body, (bytes, bytearray)):
            return iter((bytes(self.body),))
        return iter(self.body)

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def header_value(headers: Mapping[str, str], name: str) -> Optional[str]:
    """``name`` (lower-case) looked up exactly first, then case-insensitively."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None
