"""Reading and parsing request bodies: size limit, content type, strict JSON.

Strict means: UTF-8 only, no ``NaN``/``Infinity``, an object at the top. Each
refusal is a 400 (or 413) that says which rule the body broke.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from runinfra_gateway import errors
from runinfra_gateway.edge.asgi import Receive

__all__ = ["check_content_type", "parse_json_object", "read_body"]

_NON_FINITE = re.compile(rb"(?<![\"\w])-?(?:NaN|Infinity)(?![\"\w])")


async def read_body(receive: Receive, content_length: bytes | None, limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to exceed ``limit``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise errors.invalid_request("Content-Length is not a number.", code="invalid_value") from None
        if declared > limit:
            raise errors.request_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise errors.request_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def check_content_type(content_type: bytes | None, expected: bytes) -> None:
    """``expected`` (``application/json``) or 400 ``unsupported_media_type``; a charset must be UTF-8."""
    if content_type is None:
        raise _media_type(f"Send 'Content-Type: {expected.decode()}'.")
    media, _, params = content_type.partition(b";")
    if media.strip().lower() != expected:
        shown = content_type[:80].decode("latin-1")
        raise _media_type(f"Content-Type {shown!r} is not supported here; send {expected.decode()}.")
    params = params.strip().lower()
    if params and params.startswith(b"charset=") and params[8:].strip(b'"') not in (b"utf-8", b"utf8"):
        raise _media_type("JSON bodies must be UTF-8.")


def _media_type(message: str) -> errors.GatewayError:
    return errors.invalid_request(message, code="unsupported_media_type")


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise errors.invalid_request("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _explain(body, exc) from None
    if not isinstance(value, dict):
        raise errors.invalid_request("The request body must be a JSON object.", code="invalid_json")
    return value


def _explain(body: bytes, exc: orjson.JSONDecodeError) -> errors.GatewayError:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return errors.invalid_request(
            f"The request body is not valid UTF-8 (byte {bad.start}).", code="invalid_json"
        )
    if _NON_FINITE.search(body):
        return errors.invalid_request("NaN and Infinity are not valid JSON numbers.", code="invalid_json")
    return errors.invalid_request(f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.",
                                  code="invalid_json")
