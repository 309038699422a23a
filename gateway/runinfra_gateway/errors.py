"""The gateway's error envelope: one exception type that knows its HTTP shape.

Every failure the gateway reports is a :class:`GatewayError`; the edge turns it
into ``{"error": {"message", "type", "code", "param", ...}}`` with the status and
headers it carries. The constructors below name the rows of the error table in
DESIGN.md so call sites read as the contract does.
"""

from __future__ import annotations

from typing import Any, Mapping

import orjson

__all__ = [
    "GatewayError",
    "auth_error",
    "deployment_error",
    "idempotency_key_in_use",
    "idempotency_key_reused",
    "idempotency_replay_unavailable",
    "insufficient_credits",
    "internal_error",
    "invalid_request",
    "method_not_allowed",
    "model_not_found",
    "not_found",
    "permission_denied",
    "rate_limited",
    "request_headers_too_large",
    "request_timeout",
    "request_too_large",
    "unsupported_operation",
    "unsupported_parameter",
]


class GatewayError(Exception):
    """A failure with its HTTP status, OpenAI-style error type, code and param."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.type!r}, code={self.code!r}, param={self.param!r})"


# 400 / 408 / 413 / 431: the request itself is wrong (or too large, or too slow to arrive).
def invalid_request(message: str, *, code: str = "invalid_value", param: str | None = None) -> GatewayError:
    return GatewayError(400, "invalid_request_error", message, code=code, param=param)


def unsupported_parameter(param: str, deployment: str) -> GatewayError:
    return GatewayError(
        400,
        "invalid_request_error",
        f"Parameter {param!r} is not supported by deployment {deployment!r}.",
        code="unsupported_parameter",
        param=param,
    )


def unsupported_operation(operation: str, deployment: str, supported: tuple[str, ...] = ()) -> GatewayError:
    """The deployment exists but does not serve this operation: refused, never routed elsewhere."""
    listed = ", ".join(supported) or "none"
    return GatewayError(
        400,
        "invalid_request_error",
        f"Deployment {deployment!r} does not support {operation}; it supports: {listed}.",
        code="unsupported_operation",
        param="model",
    )


def request_too_large(limit_bytes: int) -> GatewayError:
    return GatewayError(
        413,
        "invalid_request_error",
        f"Request body is larger than the {limit_bytes}-byte limit.",
        code="request_too_large",
    )


def request_headers_too_large(limit_bytes: int) -> GatewayError:
    return GatewayError(
        431,
        "invalid_request_error",
        f"The request line and headers are over {limit_bytes // 1024} KiB.",
        code="request_headers_too_large",
    )


def request_timeout(message: str) -> GatewayError:
    """The client stopped sending its request (408); the connection is closed after the answer."""
    return GatewayError(408, "invalid_request_error", message, code="request_timeout")


# 401 / 402 / 403: who is asking and whether they may.
def auth_error(message: str = "Missing, unknown or revoked API key.") -> GatewayError:
    return GatewayError(401, "auth_error", message, code="invalid_api_key")


def insufficient_credits(balance_cents: float, required_cents: float, topup_url: str) -> GatewayError:
    return GatewayError(
        402,
        "insufficient_credits",
        "The workspace balance is below this request's price.",
        code="insufficient_credits",
        extra={
            "current_balance_cents": balance_cents,
            "required_cents": required_cents,
            "topup_url": topup_url,
        },
    )


def permission_denied(message: str, *, type: str = "permission_denied") -> GatewayError:
    return GatewayError(403, type, message, code=type)


# 404 / 405: what is asked for does not exist here.
def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        404,
        "model_not_found",
        f"Model {model!r} does not exist or is not a verified deployment for this key.",
        code="model_not_found",
        param="model",
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(404, "not_found_error", f"No route for {path!r}.", code="not_found")


def method_not_allowed(method: str, allowed: str) -> GatewayError:
    return GatewayError(
        405,
        "invalid_request_error",
        f"Method {method} is not allowed here; use {allowed}.",
        code="method_not_allowed",
        headers={"allow": allowed},
    )


# 409 / 422: idempotency.
def idempotency_key_in_use() -> GatewayError:
    return GatewayError(
        409,
        "idempotency_key_in_use",
        "A request with this Idempotency-Key is still in flight.",
        code="idempotency_key_in_use",
    )


def idempotency_replay_unavailable() -> GatewayError:
    return GatewayError(
        409,
        "idempotency_replay_unavailable",
        "The original request finished but its response is too large to replay; it was not run or charged again.",
        code="idempotency_replay_unavailable",
    )


def idempotency_key_reused() -> GatewayError:
    return GatewayError(
        422,
        "idempotency_key_reused",
        "This Idempotency-Key was used with a different request body.",
        code="idempotency_key_reused",
    )


# 429 / 5xx: capacity and the deployment's health.
def rate_limited(retry_after_seconds: int, message: str = "Rate limit exceeded for this key.") -> GatewayError:
    return GatewayError(
        429,
        "rate_limit_error",
        message,
        code="rate_limit_exceeded",
        headers={"retry-after": str(max(1, retry_after_seconds))},
    )


def deployment_error(
    message: str, *, status: int = 502, retry_after_seconds: int | None = None, code: str | None = None
) -> GatewayError:
    headers = {"retry-after": str(max(1, retry_after_seconds))} if retry_after_seconds is not None else {}
    return GatewayError(status, "deployment_error", message, code=code, headers=headers)


def internal_error() -> GatewayError:
    """A failure of the gateway itself; what went wrong stays in its log, not in the answer."""
    return deployment_error("Internal gateway error.", status=500, code="internal_error")
