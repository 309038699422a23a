"""The admin token: from ``RUNINFRA_ADMIN_TOKEN``, or generated on first start and printed once.

Only the token's sha256 is kept (in memory for the env token, in the
``gateway_meta`` table for a generated one). Comparison is constant-time.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.auth.credentials import digest, new_admin_token, same_digest
from runinfra_gateway.auth.keys import bearer_token
from runinfra_gateway.store.models import GatewayMeta

__all__ = ["AdminToken", "ensure_admin_token"]

_META_KEY = "admin_token_sha256"


class AdminToken:
    """Checks ``Authorization: Bearer <admin token>``; holds only the hash."""

    __slots__ = ("_hash",)

    def __init__(self, token_hash: str) -> None:
        self._hash = token_hash

    def __repr__(self) -> str:
        return "AdminToken(<hidden>)"

    def matches(self, token: str) -> bool:
        return same_digest(digest(token), self._hash)

    def check(self, authorization: bytes | None) -> None:
        token = bearer_token(authorization)
        if token is None or not self.matches(token):
            raise errors.auth_error("Missing or wrong admin token.")


def ensure_admin_token(session: Session, env_token: str | None) -> tuple[AdminToken, str | None]:
    """The admin token checker, and the new plain token when one was generated now (to print once)."""
    if env_token:
        return AdminToken(digest(env_token)), None
    row = session.get(GatewayMeta, _META_KEY)
    if row is not None:
        return AdminToken(row.value), None
    token = new_admin_token()
    session.add(GatewayMeta(key=_META_KEY, value=digest(token)))
    return AdminToken(digest(token)), token
