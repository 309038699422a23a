"""The ``RunInfra-Signature`` header: how the gateway signs a delivery.

``t=<unix seconds>,v1=<hex HMAC-SHA256 of "{t}.{raw body}" under the secret>``;
during a secret rotation one ``v1=`` entry per live secret, newest first, so a
receiver holding either the old or the new secret verifies the same delivery.
The SDK's ``construct_webhook_event`` is the verifier; the shared test vectors in
``sdk/tests/webhook_vectors.json`` pin both halves to one definition.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["SIGNATURE_HEADER", "sign", "signature"]

SIGNATURE_HEADER = "RunInfra-Signature"


def signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{raw_body}"`` under ``secret``."""
    signed = str(timestamp).encode("ascii") + b"." + raw_body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str | Sequence[str], timestamp: int, raw_body: bytes) -> str:
    """The ``RunInfra-Signature`` header value for ``raw_body`` sent at ``timestamp``.

    ``secret`` is one secret, or the live secrets of an endpoint mid-rotation
    (each contributes one ``v1=`` entry, in the order given).
    """
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer Unix second")
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets or any(not s for s in secrets):
        raise ValueError("at least one non-empty signing secret is required")
    entries = [f"t={timestamp}"] + [f"v1={signature(s, timestamp, raw_body)}" for s in secrets]
    return ",".join(entries)
