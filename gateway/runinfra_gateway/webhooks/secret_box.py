"""Endpoint signing secrets, encrypted at rest.

The gateway must sign with an endpoint's secret, so it cannot store only a hash
(as it does for API keys). Secrets are sealed with AES-256-GCM under a key
derived (HKDF-SHA256) from a 32-byte master key kept in the gateway's data
directory (``webhook-master.key``, mode 0600); the endpoint id is the associated
data, so a sealed secret copied onto another row does not open. A database dump
alone reveals no secret.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["MASTER_KEY_FILENAME", "SecretBox", "SecretBoxError", "new_signing_secret"]

MASTER_KEY_FILENAME = "webhook-master.key"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public prefix, not a secret
_VERSION = b"\x01"
_NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A sealed secret could not be opened (wrong master key or a tampered row)."""


def new_signing_secret() -> str:
    """``whsec_`` followed by 32 random bytes, hex-encoded."""
    return SECRET_PREFIX + secrets.token_hex(32)


class SecretBox:
    """Seals and opens endpoint secrets with a key derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise ValueError("the webhook master key must be at least 32 bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"runinfra webhook secrets v1").derive(
            master_key
        )
        self._aead = AESGCM(derived)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        """The box for ``data_dir``, creating its master key (0600) on first use."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / MASTER_KEY_FILENAME
        if not path.exists():
            # Written aside then linked into place: two processes starting at
            # once never read a half-written key, and the first link wins.
            staging = data_dir / f".{MASTER_KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(staging, path)
            except FileExistsError:
                pass
            finally:
                staging.unlink()
        return cls(path.read_bytes())

    @classmethod
    def from_key_file(cls, path: Path) -> SecretBox:
        """The box for an operator-provided master key (at least 32 bytes; shared by replicas)."""
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"webhooks.master_key_file: {path} holds {len(key)} bytes; at least 32 are needed")
        return cls(key)

    def seal(self, secret: str, *, endpoint_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, secret.encode("utf-8"), endpoint_id.encode("utf-8"))

    def open(self, sealed: bytes, *, endpoint_id: str) -> str:
        if len(sealed) <= 1 + _NONCE_BYTES or sealed[:1] != _VERSION:
            raise SecretBoxError("sealed webhook secret has an unknown format")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, endpoint_id.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise SecretBoxError("sealed webhook secret does not open with this master key") from None
