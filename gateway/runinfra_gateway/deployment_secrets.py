"""Upstream API keys of admin-registered deployments, sealed before they are stored.

The gateway must send an upstream's key, so it cannot keep only a hash; the
key is sealed (AES-256-GCM, the webhooks' :class:`SecretBox` and master key in
the data directory) with the deployment id as associated data. The stored
definition carries ``api_key_sealed`` instead of ``api_key``, so a database
dump reveals no upstream key.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping

from runinfra_gateway.webhooks.secret_box import SecretBox

__all__ = ["open_definition", "seal_definition"]

_PLAIN = "api_key"
_SEALED = "api_key_sealed"


def _context(deployment_id: str) -> str:
    return f"deployment:{deployment_id}"


def seal_definition(box: SecretBox, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as stored: ``api_key`` replaced by its sealed form."""
    stored = {k: v for k, v in definition.items() if k != _PLAIN}
    secret = definition.get(_PLAIN)
    if isinstance(secret, str) and secret:
        sealed = box.seal(secret, endpoint_id=_context(str(definition["id"])))
        stored[_SEALED] = base64.b64encode(sealed).decode("ascii")
    return stored


def open_definition(box: SecretBox, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The definition as the backend factory wants it (``api_key`` back in plain text, in memory only)."""
    definition = {k: v for k, v in stored.items() if k != _SEALED}
    sealed = stored.get(_SEALED)
    if isinstance(sealed, str):
        definition[_PLAIN] = box.open(base64.b64decode(sealed), endpoint_id=_context(str(stored["id"])))
    return definition
