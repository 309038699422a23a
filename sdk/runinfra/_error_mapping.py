"""Gateway error envelopes (``{"error": {"message", "type", "code", "param"}}``) to typed errors."""

from __future__ import annotations

from ._errors import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DeploymentError,
    InsufficientCreditsError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RunInfraAPIError,
    RunInfraRedirectError,
    printable,
    redact,
    redact_decoded,
)
from ._wire import header_value

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Type

__all__ = ["error_for_status", "error_from_payload", "parse_retry_after_header"]

_BY_TYPE: Dict[str, Type[RunInfraAPIError]] = {
    "auth_error": AuthenticationError,
    "authentication_error": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "permission_denied": PermissionDeniedError,
    "model_not_found": ModelNotFoundError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitError,
    "deployment_error": DeploymentError,
    "idempotency_key_in_use": ConflictError,
    "idempotency_replay_unavailable": ConflictError,
    "idempotency_key_reused": ConflictError,
    "invalid_request_error": BadRequestError,
}
_BY_STATUS: Dict[int, Type[RunInfraAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}
_MAX_MESSAGE = 2000


def _class_for(status: Optional[int], error_type: Optional[str]) -> Type[RunInfraAPIError]:
    if status == 403:
        return PermissionDeniedError  # the 403 discriminator stays in ``.type``
    if status == 404 and error_type == "model_not_found":
        return ModelNotFoundError
    if error_type is not None and error_type.startswith("idempotency_"):
        return ConflictError
    if status is not None:
        if 300 <= status < 400:
            return RunInfraRedirectError
        if status >= 500:
            return DeploymentError
        if status in _BY_STATUS:
            return _BY_STATUS[status]
    if error_type is not None and error_type in _BY_TYPE:
        return _BY_TYPE[error_type]
    return RunInfraAPIError


def _text_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _number_or_none(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_retry_after_header(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds (integer or HTTP-date), uncapped; None when absent or malformed."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        return float(int(text))
    import time

    from ._retry import _parse_http_date

    moment = _parse_http_date(text)
    return None if moment is None else max(0.0, moment - time.time())


def error_from_payload(
    error: Mapping[str, Any],
    *,
    status: Optional[int],
    request_id: Optional[str],
    secret: Optional[str],
    retry_after: Optional[str] = None,
    body: Any = None,
) -> RunInfraAPIError:
    """The typed error for one ``error`` object (from a response body or a stream event)."""
    error_type = _text_or_none(error.get("type"))
    message = _text_or_none(error.get("message")) or (f"the gateway answered HTTP {status}" if status else "")
    message = printable(redact(message or "the gateway reported an error", secret)[:_MAX_MESSAGE])
    cls = _class_for(status, error_type)
    fields: Dict[str, Any] = {
        "type": error_type or cls.default_type,
        "status_code": status,
        "request_id": request_id,
        "code": _text_or_none(error.get("code")),
        "param": _text_or_none(error.get("param")),
        "body": body,
    }
    if cls is InsufficientCreditsError:
        topup = _text_or_none(error.get("topup_url"))
        return InsufficientCreditsError(
            message,
            current_balance_cents=_number_or_none(error.get("current_balance_cents")),
            required_cents=_number_or_none(error.get("required_cents")),
            topup_url=redact(topup, secret) if topup else None,
            **fields,
        )
    if cls is RateLimitError or cls is DeploymentError:
        return cls(message, retry_after_seconds=parse_retry_after_header(retry_after), **fields)
    return cls(message, **fields)


def error_for_status(
    status: int, headers: Mapping[str, str], body: bytes, secret: Optional[str]
) -> RunInfraAPIError:
    """The typed error for a non-success response; every text it carries is redacted."""
    from ._json import decode_json

    request_id = header_value(headers, "x-request-id")
    text = redact(body.decode("utf-8", errors="replace"), secret)
    parsed: Any = None
    try:
        parsed = decode_json(text) if text else None
    except ValueError:
        parsed = None
    if secret and "\\" in text:  # an escaped key slips past the text redaction above
        parsed = redact_decoded(parsed, secret)
    error: Mapping[str, Any] = {}
    if isinstance(parsed, dict):
        inner = parsed.get("error")
        if isinstance(inner, dict):
            error = inner
        elif isinstance(inner, str):
            error = {"message": inner}
        elif isinstance(parsed.get("message"), str):
            error = parsed
    if 300 <= status < 400:
        location = redact(header_value(headers, "location") or "", secret)[:500]
        error = {"message": f"the gateway answered HTTP {status} (redirect to {location or 'nowhere'}); "
                 "redirects are not followed, check base_url"}
    elif not error and text.strip():
        error = {"message": f"the gateway answered HTTP {status}: {text.strip()[:500]}"}
    return error_from_payload(
        error,
        status=status,
        request_id=request_id,
        secret=secret,
        retry_after=header_value(headers, "retry-after"),
        body=parsed if parsed is not None else (text[:_MAX_MESSAGE] or None),
    )
