"""Sending responses over raw ASGI: JSON, bytes, errors. Every one carries ``x-request-id``."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from runinfra_gateway.edge.asgi import Send
from runinfra_gateway.errors import GatewayError

__all__ = ["JSON", "send_bytes", "send_error", "send_json"]

JSON = b"application/json"
RawHeaders = list[tuple[bytes, bytes]]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    request_id: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    headers: RawHeaders = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: object, request_id: str, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send_bytes(send, status, orjson.dumps(payload), JSON, request_id, extra)


def error_headers(error: GatewayError) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in error.headers.items()]


async def send_error(send: Send, error: GatewayError, request_id: str) -> None:
    await send_bytes(send, error.status, error.body_bytes(), JSON, request_id, error_headers(error))
