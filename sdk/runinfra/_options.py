"""Client-wide and per-request options: checked before any network request is sent.

Per-request options accept snake_case or camelCase spellings, never both for one option,
and refuse unknown keys so a typo cannot silently disable idempotency, tracing, timeouts
or retries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from ._errors import invalid_options

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RETRY_BASE_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "ResolvedOptions",
    "check_max_retries",
    "check_retry_base_seconds",
    "check_timeout_seconds",
    "new_client_request_id",
    "resolve_request_options",
]

DEFAULT_TIMEOUT_SECONDS = 120.0  # runinfra 0.2.0's default
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BASE_SECONDS = 0.25

# canonical name -> accepted spellings
_ALIASES: Dict[str, Tuple[str, ...]] = {
    "client_request_id": ("client_request_id", "clientRequestId"),
    "idempotency_key": ("idempotency_key", "idempotencyKey"),
    "timeout_seconds": ("timeout_seconds", "timeoutSeconds"),
    "max_retries": ("max_retries", "maxRetries"),
    "retry_base_seconds": ("retry_base_seconds", "retryBaseSeconds"),
    "headers": ("headers",),
}
_CANONICAL = {spelling: name for name, spellings in _ALIASES.items() for spelling in spellings}

# Headers the SDK sets itself, and transport or credential headers an app must never set.
SDK_CONTROLLED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "x-client-request-id",
        "idempotency-key",
        "x-runinfra-sdk",
        "x-runinfra-sdk-version",
    }
)
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "accept-encoding",  # the transport sends identity and never decodes gzip: a second value breaks bodies
        "cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "api-key",
        "x-api-key",
        "x-auth-token",
        "x-access-token",
    }
)
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class ResolvedOptions:
    """The resolved options of one call (client defaults filled in)."""

    __slots__ = ("client_request_id", "headers", "idempotency_key", "max_retries", "retry_base_seconds", "timeout")

    def __init__(
        self,
        timeout: float,
        max_retries: int,
        retry_base_seconds: float,
        client_request_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_seconds = retry_base_seconds
        self.client_request_id = client_request_id
        self.idempotency_key = idempotency_key
        self.headers = headers


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_timeout_seconds(value: object, name: str = "timeout_seconds") -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:  # type: ignore[arg-type,operator]
        raise invalid_options(f"{name} must be a positive, finite number of seconds", param=name)
    return float(value)  # type: ignore[arg-type]


def check_max_retries(value: object, name: str = "max_retries") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_options(f"{name} must be a non-negative integer", param=name)
    return value


def check_retry_base_seconds(value: object, name: str = "retry_base_seconds") -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:  # type: ignore[arg-type,operator]
        raise invalid_options(f"{name} must be a non-negative, finite number of seconds", param=name)
    return float(value)  # type: ignore[arg-type]


def check_header_value(value: object, name: str, *, max_length: int = 8192) -> str:
    """A header value that cannot inject another header or split the request."""
    if not isinstance(value, str):
        raise invalid_options(f"{name} must be a string", param=name)
    if not value.strip():
        raise invalid_options(f"{name} must not be blank", param=name)
    if value != value.strip():
        raise invalid_options(f"{name} must not start or end with whitespace", param=name)
    if len(value) > max_length:
        raise invalid_options(f"{name} must be at most {max_length} characters", param=name)
    if not value.isascii() or not value.isprintable():
        raise invalid_options(f"{name} must be printable ASCII", param=name)
    return value


def check_idempotency_key(value: object, api_key: str) -> str:
    key = check_header_value(value, "idempotency_key", max_length=255)
    if api_key in key:
        raise invalid_options("idempotency_key must not contain secrets", param="idempotency_key")
    return key


def check_custom_headers(value: object) -> Dict[str, str]:
    if not isinstance(value, Mapping):
        raise invalid_options("headers must be a mapping of header names to strings", param="headers")
    checked: Dict[str, str] = {}
    seen = set()
    for name, header_value in value.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
            raise invalid_options(f"header name {name!r} is not a valid HTTP token", param="headers")
        lowered = name.lower()
        if lowered in SDK_CONTROLLED_HEADERS:
            raise invalid_options(f"header {name!r} is set by the SDK and cannot be overridden", param="headers")
        if lowered in FORBIDDEN_HEADERS:
            raise invalid_options(f"header {name!r} is a transport or credential header", param="headers")
        if lowered in seen:
            raise invalid_options(f"header {name!r} is given twice", param="headers")
        seen.add(lowered)
        checked[name] = check_header_value(header_value, f"headers[{name!r}]")
    return checked


def resolve_request_options(
    raw: Optional[Mapping[str, object]],
    *,
    timeout: float,
    max_retries: int,
    retry_base_seconds: float,
    api_key: str,
) -> ResolvedOptions:
    """Per-request options merged over the client's defaults."""
    if raw is None:
        return ResolvedOptions(timeout, max_retries, retry_base_seconds)
    if not isinstance(raw, Mapping):
        raise invalid_options("request_options must be a mapping", param="request_options")
    given: Dict[str, Any] = {}
    for spelling, value in raw.items():
        canonical = _CANONICAL.get(spelling) if isinstance(spelling, str) else None
        if canonical is None:
            known = ", ".join(sorted(_CANONICAL))
            raise invalid_options(f"unknown request option {spelling!r} (known: {known})", param="request_options")
        if canonical in given:
            raise invalid_options(
                f"request option {canonical!r} is given in both snake_case and camelCase; choose one",
                param=canonical,
            )
        given[canonical] = value
    options = ResolvedOptions(timeout, max_retries, retry_base_seconds)
    if "timeout_seconds" in given:
        options.timeout = check_timeout_seconds(given["timeout_seconds"])
    if "max_retries" in given:
        options.max_retries = check_max_retries(given["max_retries"])
    if "retry_base_seconds" in given:
        options.retry_base_seconds = check_retry_base_seconds(given["retry_base_seconds"])
    if given.get("client_request_id") is not None:
        options.client_request_id = check_header_value(given["client_request_id"], "client_request_id", max_length=255)
    if given.get("idempotency_key") is not None:
        options.idempotency_key = check_idempotency_key(given["idempotency_key"], api_key)
    if given.get("headers") is not None:
        options.headers = check_custom_headers(given["headers"])
    return options


def new_client_request_id() -> str:
    """A random UUID4 string, without importing ``uuid`` (it costs startup time)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
