"""Translating what an upstream engine answered into the gateway's error table.

One place decides: client mistakes the engine caught stay 400
``invalid_request_error`` (with the engine's message, code and param); the
engine's own trouble (5xx, a rejected gateway credential, a model name it does
not know) is a 502 ``deployment_error``; busy (429/503) is 503 with
``Retry-After``; timeouts are 504. Messages are scrubbed of the upstream API
key, in case an engine echoes it, cut short, and made printable: they reach the
operator's terminal too, where an engine's escape sequence must not act and its
line break must not forge a "runinfra: ready" line.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

from runinfra_gateway.errors import GatewayError, deployment_error
from runinfra_gateway.peer_text import printable

__all__ = ["error_from_upstream", "upstream_message"]

_MAX_MESSAGE = 500


def upstream_message(body: bytes, *, secret: str | None) -> tuple[str, Any, Any]:
    """``(message, code, param)`` from an engine's error body, whatever dialect it speaks."""
    message: Any = None
    code: Any = None
    param: Any = None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):  # OpenAI, vLLM, SGLang, llama.cpp, Ollama
            message, code, param = error.get("message"), error.get("code"), error.get("param")
        elif isinstance(error, str):  # TGI: {"error": "...", "error_type": "..."}
            message = error
        else:  # FastAPI: {"detail": ...}; older vLLM: {"object": "error", "message": ...}
            message = parsed.get("message", parsed.get("detail"))
    if message is None:
        message = body.decode("utf-8", "replace").strip()
    if not isinstance(message, str):
        message = orjson.dumps(message).decode()
    if secret:
        message = message.replace(secret, "[redacted]")
    message = printable(message, _MAX_MESSAGE) or "no error message"
    return (
        message,
        code if isinstance(code, str) else None,
        param if isinstance(param, str) else None,
    )


def error_from_upstream(
    status: int, body: bytes, headers: Mapping[str, str], *, deployment_id: str, secret: str | None
) -> GatewayError:
    message, code, param = upstream_message(body, secret=secret)
    if status in (400, 422):
        return GatewayError(400, "invalid_request_error", message, code=code or "invalid_value", param=param)
    if status == 413:
        return GatewayError(
            413,
            "invalid_request_error",
            f"The upstream engine of {deployment_id!r} refused the request as too large: {message}",
            code="request_too_large",
        )
    if status in (401, 403):
        return deployment_error(
            f"The upstream engine of {deployment_id!r} rejected the gateway's credentials ({status}).", status=502
        )
    if status in (429, 503):
        return deployment_error(
            f"The upstream engine of {deployment_id!r} is busy ({status}): {message}",
            status=503,
            retry_after_seconds=_retry_after(headers),
        )
    if status in (408, 504):
        return deployment_error(f"The upstream engine of {deployment_id!r} timed out ({status}).", status=504)
    return deployment_error(f"The upstream engine of {deployment_id!r} failed ({status}): {message}", status=502)


def _retry_after(headers: Mapping[str, str]) -> int:
    value = headers.get("retry-after", "")
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) <= 3600 else 1
