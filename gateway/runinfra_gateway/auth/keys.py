"""The in-memory key table the request path authenticates against (no database I/O per request).

Every unrevoked key is loaded at start; the admin service adds and removes
entries in the same process, so a revocation takes effect on the very next
request. A key the table does not know is looked up once in the database
(another replica may have created it); a miss is remembered briefly and such
lookups are capped per second, so a flood of bogus keys cannot turn into a
flood of queries on the database thread the ledger also uses.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.auth.credentials import KEY_PREFIX, digest, same_digest
from runinfra_gateway.store.database import Database
from runinfra_gateway.store.models import ApiKey

__all__ = ["KeyRecord", "KeyTable", "bearer_token"]

_NEGATIVE_TTL_SECONDS = 5.0
_DB_LOOKUPS_PER_SECOND = 20
_NEGATIVE_MAX = 10_000
# Longest header value we bother hashing; real keys are 47 characters.
_MAX_SECRET_LENGTH = 200


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the request path knows about an authenticated key (never the secret)."""

    id: str
    workspace_id: str
    scope: str
    pipeline_id: str | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    secret_hash: str

    @classmethod
    def from_row(cls, row: ApiKey) -> KeyRecord:
        return cls(
            id=row.id,
            workspace_id=row.workspace_id,
            scope=row.scope,
            pipeline_id=row.pipeline_id,
            requests_per_minute=row.requests_per_minute,
            tokens_per_minute=row.tokens_per_minute,
            secret_hash=row.secret_hash,
        )


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or ``None``."""
    if not authorization or len(authorization) > _MAX_SECRET_LENGTH + 7:
        return None
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    token = token.strip()
    if not token:
        return None
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        return None


class KeyTable:
    """Digest → :class:`KeyRecord` for every live key."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._by_digest: dict[str, KeyRecord] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._lookup_window = 0
        self._lookups_in_window = 0

    def load(self, session: Session) -> None:
        rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None))).all()
        self._by_digest = {row.secret_hash: KeyRecord.from_row(row) for row in rows}

    def add(self, record: KeyRecord) -> None:
        self._by_digest[record.secret_hash] = record
        self._misses.pop(record.secret_hash, None)

    def remove(self, key_id: str) -> None:
        for secret_hash, record in list(self._by_digest.items()):
            if record.id == key_id:
                del self._by_digest[secret_hash]

    def __len__(self) -> int:
        return len(self._by_digest)

    async def authenticate(self, authorization: bytes | None) -> KeyRecord:
        """The key behind an Authorization header, or 401 ``auth_error``."""
        token = bearer_token(authorization)
        if token is None:
            raise errors.auth_error("Missing API key: send 'Authorization: Bearer <key>'.")
        if not token.startswith(KEY_PREFIX):
            raise errors.auth_error()
        wanted = digest(token)
        record = self._by_digest.get(wanted)
        if record is not None:
            return record
        return await self._authenticate_slow(wanted)

    async def _authenticate_slow(self, wanted: str) -> KeyRecord:
        now = time.monotonic()
        seen = self._misses.get(wanted)
        if seen is not None and now - seen < _NEGATIVE_TTL_SECONDS:
            raise errors.auth_error()
        window = int(now)
        if window != self._lookup_window:
            self._lookup_window, self._lookups_in_window = window, 0
        if self._lookups_in_window >= _DB_LOOKUPS_PER_SECOND:
            raise errors.auth_error()
        self._lookups_in_window += 1

        def lookup(session: Session) -> KeyRecord | None:
            row = session.scalars(
                select(ApiKey).where(ApiKey.secret_hash == wanted, ApiKey.revoked_at.is_(None))
            ).first()
            if row is None or not same_digest(row.secret_hash, wanted):
                return None
            return KeyRecord.from_row(row)

        record = await self._db.run(lookup)
        if record is None:
            self._misses[wanted] = now
            self._misses.move_to_end(wanted)
            while len(self._misses) > _NEGATIVE_MAX:
                self._misses.popitem(last=False)
            raise errors.auth_error()
        self.add(record)
        return record
