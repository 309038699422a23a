"""Secret material: generating API keys and admin tokens, and hashing them for storage.

A key is ``rik_`` + 43 characters of URL-safe base64 (32 random bytes, 256
bits). Only ``sha256(secret)`` is stored. A slow password hash (bcrypt,
argon2) protects *low-entropy* secrets against guessing; a 256-bit random
secret cannot be guessed, so a fast hash is as safe and lets the gateway look
a key up by its digest in O(1) on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = [
    "ADMIN_TOKEN_PREFIX",
    "KEY_PREFIX",
    "digest",
    "display_prefix",
    "new_admin_token",
    "new_api_key",
    "new_id",
    "same_digest",
]

KEY_PREFIX = "rik_"
ADMIN_TOKEN_PREFIX = "ria_"  # noqa: S105 - a public prefix, not a secret


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_admin_token() -> str:
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_id(kind: str) -> str:
    """A public identifier (not a secret): ``key_…``, ``ws_…``."""
    return f"{kind}_{secrets.token_hex(8)}"


def digest(secret: str) -> str:
    """The stored form of a secret: sha256 hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same_digest(a: str, b: str) -> bool:
    """Constant-time equality, so response timing says nothing about how much of a hash matched."""
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def display_prefix(secret: str) -> str:
    """What people see to tell keys apart (``rik_AbCd1234``); never enough to use the key."""
    return secret[:12]
