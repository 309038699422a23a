"""Verify signed RunInfra webhook deliveries: a few pure functions (after stripe-python).

Header: ``RunInfra-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}">``.
Several ``v1`` entries may be present while a secret is being rotated; any one matching
verifies the delivery. Always verify the exact raw body, before parsing JSON.
"""

from __future__ import annotations

import time

from ._errors import WebhookVerificationError

TYPE_CHECKING = False  # typing is not imported at run time: it costs more startup than the whole SDK
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "WebhookVerificationError",
    "build_signature_header",
    "compute_signature",
    "construct_webhook_event",
    "parse_signature_header",
    "verify_webhook_signature",
]

SIGNATURE_HEADER = "RunInfra-Signature"
DEFAULT_TOLERANCE_SECONDS = 300
_MAX_HEADER_LENGTH = 8192

if TYPE_CHECKING:
    Payload = Union[bytes, bytearray, str]


def _utf8(text: str) -> Optional[bytes]:
    # None for text UTF-8 cannot hold (lone surrogates); the caller raises outside the except block so
    # no UnicodeEncodeError, whose ``object`` is the whole text (maybe the secret), rides on the chain.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    encoded = _utf8(payload) if isinstance(payload, str) else None
    if encoded is None:
        raise WebhookVerificationError("payload must be the raw request body as bytes or UTF-8 text")
    return encoded


def _secret_bytes(secret: object) -> bytes:
    if isinstance(secret, (bytes, bytearray)) and secret.strip():
        return bytes(secret)
    encoded = _utf8(secret) if isinstance(secret, str) and secret.strip() else None
    if encoded is None:
        raise WebhookVerificationError("the webhook secret must be a non-blank UTF-8 string")
    return encoded


def parse_signature_header(header: object) -> Tuple[int, List[str]]:
    """``(timestamp, [v1 signatures])`` from a ``RunInfra-Signature`` value.

    The timestamp must be one non-negative integer of Unix seconds; other schemes (``v0``,
    future ones) are ignored; at least one ``v1`` entry is required.
    """
    if not isinstance(header, str) or not header.strip():
        raise WebhookVerificationError("the RunInfra-Signature header is missing")
    if len(header) > _MAX_HEADER_LENGTH:
        raise WebhookVerificationError("the RunInfra-Signature header is too long")
    timestamp: Optional[int] = None
    signatures: List[str] = []
    for item in header.split(","):
        key, equals, value = item.strip().partition("=")
        if not equals:
            raise WebhookVerificationError("the RunInfra-Signature header is malformed")
        if key == "t":
            if timestamp is not None:
                raise WebhookVerificationError("the RunInfra-Signature header has more than one timestamp")
            if not value.isdigit() or not value.isascii() or len(value) > 15:
                raise WebhookVerificationError("the RunInfra-Signature timestamp must be a non-negative integer")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookVerificationError("the RunInfra-Signature header has no timestamp")
    if not signatures:
        raise WebhookVerificationError("the RunInfra-Signature header has no v1 signature")
    return timestamp, signatures


def compute_signature(payload: Payload, secret: Union[str, bytes], timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}.{payload}"`` under ``secret``."""
    import hashlib
    import hmac

    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise WebhookVerificationError("the timestamp must be a non-negative integer")
    message = str(timestamp).encode("ascii") + b"." + _payload_bytes(payload)
    return hmac.new(_secret_bytes(secret), message, hashlib.sha256).hexdigest()


def build_signature_header(
    payload: Payload,
    secret: Union[str, bytes],
    timestamp: Optional[int] = None,
    *,
    extra_secrets: Tuple[Union[str, bytes], ...] = (),
) -> str:
    """A valid ``RunInfra-Signature`` value, for tests and for senders (one ``v1`` per secret)."""
    moment = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={moment}"]
    for key in (secret, *extra_secrets):
        parts.append(f"v1={compute_signature(payload, key, moment)}")
    return ",".join(parts)


def verify_webhook_signature(
    payload: Payload,
    signature_header: str,
    secret: Union[str, bytes],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: Optional[float] = None,
) -> bool:
    """Return True, or raise ``WebhookVerificationError`` unless a ``v1`` signature matches and the
    timestamp is fresh.

    ``now`` (Unix seconds) defaults to the current time; pass it to verify a stored
    delivery. A timestamp further than ``tolerance_seconds`` from ``now`` in either
    direction is refused, so a captured delivery cannot be replayed later.
    """
    import hmac
    import math

    # NaN or infinity would pass every timestamp: "abs(now - t) > nan" is always false.
    if (
        isinstance(tolerance_seconds, bool)
        or not isinstance(tolerance_seconds, (int, float))
        or not math.isfinite(tolerance_seconds)
        or tolerance_seconds < 0
    ):
        raise WebhookVerificationError("tolerance_seconds must be a non-negative, finite number")
    body = _payload_bytes(payload)
    key = _secret_bytes(secret)
    timestamp, signatures = parse_signature_header(signature_header)
    expected = compute_signature(body, key, timestamp)
    matched = False
    for candidate in signatures:
        # compare_digest refuses non-ASCII str; every candidate is compared (constant work).
        if candidate.isascii() and hmac.compare_digest(expected, candidate.lower()):
            matched = True
    if not matched:
        raise WebhookVerificationError("no v1 signature in the RunInfra-Signature header matches the payload")
    current = time.time() if now is None else now
    if not math.isfinite(current):  # a NaN "now" would make every timestamp fresh, as above
        raise WebhookVerificationError("now must be a finite number of Unix seconds")
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookVerificationError("the RunInfra-Signature timestamp is outside the tolerance")
    return True


def construct_webhook_event(
    payload: Payload,
    signature_header: str,
    secret: Union[str, bytes],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: Optional[float] = None,
) -> Dict[str, Any]:
    """Verify the delivery, then parse its body as a JSON object."""
    from ._json import decode_json

    verify_webhook_signature(payload, signature_header, secret, tolerance_seconds, now=now)
    try:
        event = decode_json(_payload_bytes(payload))
    except ValueError:
        raise WebhookVerificationError("the webhook payload is not valid JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the webhook payload is not a JSON object")
    return event


class Webhooks:
    """``client.webhooks``: the same verification helpers, bound to the client namespace."""

    __slots__ = ()

    def verify_signature(
        self,
        payload: Payload,
        signature_header: str,
        secret: Union[str, bytes],
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        *,
        now: Optional[float] = None,
    ) -> bool:
        return verify_webhook_signature(payload, signature_header, secret, tolerance_seconds, now=now)

    def construct_event(
        self,
        payload: Payload,
        signature_header: str,
        secret: Union[str, bytes],
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        *,
        now: Optional[float] = None,
    ) -> Dict[str, Any]:
        return construct_webhook_event(payload, signature_header, secret, tolerance_seconds, now=now)
