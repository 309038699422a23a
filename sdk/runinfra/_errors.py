"""Every exception the SDK raises, in one place, plus the one mapping from transport failures.

Grouped by kind like httpx's ``_exceptions.py``:

* ``RunInfraError`` — the base; ``type`` is what callers branch on.
  * local refusals before the network (``type == "invalid_request_options"``)
  * ``RunInfraAPIError`` — the gateway answered with an error status.
  * ``RunInfraTransportError`` — the bytes never arrived whole
    (``RunInfraConnectionError``, ``RunInfraTimeoutError``).
  * ``RunInfraStreamParseError`` — a server-sent-events frame that is not valid.
* ``WebhookVerificationError`` — a webhook delivery that fails verification.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, Literal, Mapping, Optional


__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DeploymentError",
    "InsufficientCreditsError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RunInfraAPIError",
    "RunInfraConnectionError",
    "RunInfraError",
    "RunInfraRedirectError",
    "RunInfraStreamParseError",
    "RunInfraTimeoutError",
    "RunInfraTransportError",
    "UnsupportedOperationError",
    "WebhookVerificationError",
    "map_transport_errors",
]

INVALID_REQUEST_OPTIONS = "invalid_request_options"
REDACTED = "[REDACTED]"


class RunInfraError(Exception):
    """Base class of every error the SDK raises; branch on ``type``, not on the message."""

    default_type = "runinfra_error"

    def __init__(
        self,
        message: str,
        *,
        type: Optional[str] = None,
        status_code: Optional[int] = None,
        request_id: Optional[str] = None,
        code: Optional[str] = None,
        param: Optional[str] = None,
        body: Optional[Any] = None,
        retry_after_seconds: Optional[float] = None,
        status: Optional[int] = None,
        error_type: Optional[str] = None,
    ) -> None:
        # ``status`` and ``error_type`` are the runinfra 0.2.0 spellings, kept for code that
        # builds these errors itself (fake transports in tests, wrappers).
        super().__init__(message)
        self.message = message
        self.type: str = type or error_type or self.default_type
        self.status_code = status_code if status_code is not None else (status or None)
        self.request_id = request_id
        self.code = code
        self.param = param
        self.body = body
        self.retry_after_seconds = retry_after_seconds

    @property
    def status(self) -> int:
        """The HTTP status, or 0 when the gateway never answered (as in runinfra 0.2.0)."""
        return self.status_code or 0

    def __str__(self) -> str:
        if self.request_id:
            return printable(f"{self.message} (request_id={self.request_id})")
        return printable(self.message)

    def __repr__(self) -> str:
        fields = [f"message={self.message!r}", f"type={self.type!r}"]
        for name in ("status_code", "request_id", "code", "param", "retry_after_seconds"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return f"{self.__class__.__name__}({', '.join(fields)})"

    def __reduce__(self) -> Any:
        # Pickling (multiprocessing, task queues) must keep the keyword fields.
        return (_rebuild, (self.__class__, self.message, self.__dict__.copy()))


def _rebuild(cls: Any, message: str, state: Dict[str, Any]) -> RunInfraError:
    error: RunInfraError = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


# --- the gateway answered with an error status -------------------------------------------


class RunInfraAPIError(RunInfraError):
    """The gateway answered with a non-success HTTP status."""

    default_type = "api_error"


class BadRequestError(RunInfraAPIError):
    """400/405/413/422: the gateway refused the request (``code`` and ``param`` say why)."""

    default_type = "invalid_request_error"


class AuthenticationError(RunInfraAPIError):
    """401: the key is missing, unknown or revoked."""

    default_type = "auth_error"


class InsufficientCreditsError(RunInfraAPIError):
    """402: the workspace balance is below the request's price."""

    default_type = "insufficient_credits"

    def __init__(
        self,
        message: str,
        *,
        current_balance_cents: Optional[float] = None,
        required_cents: Optional[float] = None,
        topup_url: Optional[str] = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self.current_balance_cents = current_balance_cents
        self.required_cents = required_cents
        self.topup_url = topup_url


class PermissionDeniedError(RunInfraAPIError):
    """403: the key may not do this; ``type`` keeps the gateway's discriminator."""

    default_type = "permission_denied"


class NotFoundError(RunInfraAPIError):
    """404: an unknown route."""

    default_type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    """404: an unknown or unverified model, or a pipeline this workspace does not own."""

    default_type = "model_not_found"


class ConflictError(RunInfraAPIError):
    """409/422 idempotency conflicts: key in flight, replay unavailable, or key reused."""

    default_type = "conflict"


class RateLimitError(RunInfraAPIError):
    """429: over the key's rate limit; ``retry_after_seconds`` when the gateway said."""

    default_type = "rate_limit_error"


class DeploymentError(RunInfraAPIError):
    """5xx: the deployment is busy, failed or timed out; ``retry_after_seconds`` when a busy one said."""

    default_type = "deployment_error"


class UnsupportedOperationError(RunInfraAPIError):
    """Kept for v0.1.x code that catches it; current helpers raise typed gateway errors instead."""

    default_type = "unsupported_operation"


class RunInfraRedirectError(RunInfraAPIError):
    """3xx: redirects are never followed, so a key never travels to another origin."""

    default_type = "redirect_not_followed"


# --- the bytes never arrived whole --------------------------------------------------------


class RunInfraTransportError(RunInfraError):
    """The request or its response body failed below HTTP."""

    default_type = "transport_error"
    _transient = True  # False where a retry would only repeat the failure (see ``permanent``)


class RunInfraConnectionError(RunInfraTransportError):
    """Connecting, sending, or reading the body failed (reset, refused, TLS, short body)."""

    default_type = "connection_error"


class RunInfraTimeoutError(RunInfraTransportError):
    """Connecting, waiting for headers, or a stalled body read took longer than the timeout."""

    default_type = "timeout_error"


# --- malformed streams and webhooks -------------------------------------------------------


class RunInfraStreamParseError(RunInfraError):
    """A server-sent-events frame was not valid (``request_id`` names the response)."""

    default_type = "stream_parse_error"


class WebhookVerificationError(RunInfraError):
    """A webhook delivery's signature, timestamp or JSON did not verify."""

    default_type = "webhook_verification_error"


def permanent(error: RunInfraTransportError) -> RunInfraTransportError:
    """``error`` marked as one a retry cannot mend: an oversized body, a refused certificate, a
    closed client fail the same way again, after another download or handshake and a sleep."""
    error._transient = False
    return error


def invalid_options(message: str, *, param: Optional[str] = None) -> RunInfraError:
    """The error for a request refused locally, before any byte reaches the network."""
    return RunInfraError(message, type=INVALID_REQUEST_OPTIONS, param=param)


# Control characters in text a server sent, made inert for wherever an error is printed or logged: an
# ANSI escape must not drive the reader's terminal, a line break must not forge a log line, and a bidi
# override must not reorder what is shown. Line breaks and tabs become spaces; the rest, visible escapes.
_INERT: Dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
    **{code: f"\\u{code:04x}" for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))},
    **{code: " " for code in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029)},
}


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (line breaks as spaces)."""
    return text.translate(_INERT)


def redact(text: str, secret: Optional[str]) -> str:
    """``text`` with every occurrence of ``secret`` replaced (servers may echo a key back)."""
    if secret and secret in text:
        return text.replace(secret, REDACTED)
    return text


def redact_headers(headers: Mapping[str, str], secret: Optional[str]) -> Mapping[str, str]:
    """``headers`` with ``secret`` redacted from every value: ``x-request-id`` or ``Content-Type``
    reach errors, results and logs, and a server may echo a key in any header."""
    if not secret or not any(isinstance(value, str) and secret in value for value in headers.values()):
        return headers
    return {name: redact(value, secret) if isinstance(value, str) else value for name, value in headers.items()}


def redact_decoded(value: Any, secret: str) -> Any:
    """A freshly decoded JSON value with ``secret`` redacted from every string and key, in place.

    Redacting the raw bytes is not enough: JSON escapes (``\\u0073k-…``) decode to the key. A loop
    rather than recursion: the decoder accepts nesting deeper than a recursive walk could follow.
    """
    if isinstance(value, str):
        return redact(value, secret)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in list(node):
                item = node[key]
                if isinstance(item, str):
                    item = redact(item, secret)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
                if isinstance(key, str) and secret in key:
                    del node[key]
                    key = redact(key, secret)
                node[key] = item
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = redact(item, secret)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
    return value


def raise_unchained(error: BaseException) -> None:
    """Raise ``error`` with no ``__context__``/``__cause__`` that could carry a secret."""
    try:
        raise error from None
    finally:
        error.__context__ = None


class map_transport_errors:
    """Translate socket, ``ssl`` and ``http.client`` failures into the public hierarchy.

    The single place where low-level exceptions become ``RunInfraTimeoutError`` or
    ``RunInfraConnectionError``; messages are redacted and the original chain is cut,
    because ``http.client`` exceptions can quote bytes the server sent (an echoed key).
    """

    __slots__ = ("_request_id", "_secret")

    def __init__(self, secret: Optional[str] = None, request_id: Optional[str] = None) -> None:
        self._secret = secret
        self._request_id = request_id

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, RunInfraError):
            return False
        translated = translate_transport_error(exc, self._secret, self._request_id)
        if translated is None:
            return False
        raise_unchained(translated)
        return False  # pragma: no cover - raise_unchained always raises


def translate_transport_error(
    exc: BaseException, secret: Optional[str], request_id: Optional[str]
) -> Optional[RunInfraError]:
    """The public error for a low-level failure, or None when ``exc`` is not one."""
    import socket  # already loaded by the transport; kept out of ``import runinfra``

    if isinstance(exc, socket.timeout):
        return RunInfraTimeoutError("the request timed out waiting for the gateway", request_id=request_id)
    name = exc.__class__.__name__
    if name == "IncompleteRead":
        return RunInfraConnectionError(
            "the response body ended before its declared length", request_id=request_id
        )
    if name == "SSLCertVerificationError":
        detail = redact(str(getattr(exc, "verify_message", "") or exc), secret)
        return permanent(
            RunInfraConnectionError(f"TLS certificate verification failed: {detail}", request_id=request_id)
        )
    module = exc.__class__.__module__
    if isinstance(exc, OSError) or module in ("http.client", "ssl"):
        detail = redact(str(exc), secret)[:200]
        message = f"connection to the gateway failed: {name}"
        if detail:
            message = f"{message}: {detail}"
        return RunInfraConnectionError(message, request_id=request_id)
    return None
