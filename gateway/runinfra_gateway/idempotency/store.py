"""Idempotency-Key handling: in-flight locks in memory, finished responses in SQL.

Flow (core calls these around the backend call):

* :meth:`IdempotencyStore.begin` takes the in-memory lock for (API key id,
  Idempotency-Key) and writes an ``in_flight`` row carrying the request id. A second
  request with the same key gets 409 ``idempotency_key_in_use`` while the first runs,
  422 ``idempotency_key_reused`` if its body fingerprint differs, the stored response
  once the first finished, or 409 ``idempotency_replay_unavailable`` if that response
  was too large to keep. A replay is never re-run and never re-charged: core skips
  the backend and the ledger when ``begin`` returns a response.
* :meth:`IdempotencyStore.complete` stores the response (or, over ``max_replay_bytes``,
  only the fact that it finished) and commits before it returns, so a repeat after a
  sent response always replays.
* :meth:`IdempotencyStore.complete_without_replay` records a finished stream (never
  stored): repeats get 409 ``idempotency_replay_unavailable``.
* :meth:`IdempotencyStore.abandon` deletes the in-flight row: the request failed before
  it was charged, and the key may be retried.

After a crash, an ``in_flight`` row with no live lock is *abandoned*. If the ledger
shows its request was charged (the process died between settle and ``complete``),
the key answers 409 ``idempotency_replay_unavailable`` forever after (state ``lost``):
it finished and was paid for, so it is neither re-run nor charged again. Otherwise the
request never finished and the key can be retried: the next ``begin`` takes it over.

Records expire ``retention_seconds`` (24 h) after they were made; an expired record is
as good as absent, and ``begin`` deletes expired rows in small batches once a minute.

Throughput: every ``begin``, ``complete`` and ``abandon`` goes through a
:class:`~runinfra_gateway.idempotency.group_commit.GroupCommit`, so the requests that
arrive while one transaction commits share the next one, and each caller resumes
after the commit holding its record. ``begin`` for a fresh key is one
``INSERT ... ON CONFLICT DO NOTHING`` (no read); only a key SQL already has is read
back. Responses this process stored recently are kept in memory (bounded), so their
replays and refusals need no database at all.

Across replicas the in-memory lock is not enough: with PostgreSQL, ``begin`` would
``INSERT ... ON CONFLICT DO NOTHING`` and, on conflict, ``SELECT ... FOR UPDATE`` the
row, treating an ``in_flight`` row whose lease (owner replica + heartbeat) is fresh as
in use; with Redis, ``SET key owner NX PX lease`` is the lock and the SQL row the
record. One process is what is built here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.billing.models import LedgerEntry
from runinfra_gateway.idempotency.group_commit import GroupCommit
from runinfra_gateway.idempotency.models import IdempotencyRecord
from runinfra_gateway.store import Database

__all__ = ["IdempotencyStore", "StoredResponse", "check_idempotency_key"]

_MAX_KEY_LENGTH = 255
_MAX_FINGERPRINT_BYTES = 64
_PURGE_BATCH = 1000
# Finished records remembered in memory for replays without SQL: at most this many, this many body bytes.
_RECENT_RECORDS = 4096
_RECENT_BYTES = 16 * 1024 * 1024
_RECORDS = cast(Table, IdempotencyRecord.__table__)

_Outcome = Literal["proceed", "replay", "reused", "unavailable"]


@dataclass(frozen=True)
class StoredResponse:
    """A finished response as it will be replayed."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class _Finished:
    """A record this process finished, as SQL holds it (``response`` None: not replayable)."""

    fingerprint: bytes
    response: StoredResponse | None
    expires_at: float


def check_idempotency_key(value: str) -> None:
    """1-255 printable ASCII characters (DESIGN.md); anything else is a 400 naming the header."""
    if not isinstance(value, str) or not 1 <= len(value) <= _MAX_KEY_LENGTH or not value.isascii():
        raise errors.invalid_request(
            "Idempotency-Key must be 1 to 255 printable ASCII characters.", param="Idempotency-Key"
        )
    if not value.isprintable():
        raise errors.invalid_request(
            "Idempotency-Key must be 1 to 255 printable ASCII characters.", param="Idempotency-Key"
        )


class IdempotencyStore:
    """Replay, lock and record requests made with an Idempotency-Key, scoped to the API key."""

    def __init__(
        self,
        db: Database,
        *,
        max_replay_bytes: int = 1_000_000,
        retention_seconds: int = 86_400,
        purge_interval_seconds: float = 60.0,
    ) -> None:
        if max_replay_bytes < 0 or retention_seconds <= 0:
            raise ValueError("max_replay_bytes must be >= 0 and retention_seconds > 0")
        self._db = db
        self._commits = GroupCommit(db)
        self._insert_in_flight = (postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert)(
            _RECORDS
        ).on_conflict_do_nothing(index_elements=["key_id", "idempotency_key"])
        self._recent: OrderedDict[tuple[str, str], _Finished] = OrderedDict()
        self._recent_bytes = 0
        self._max_replay_bytes = max_replay_bytes
        self._retention = float(retention_seconds)
        self._purge_interval = purge_interval_seconds
        self._next_purge = 0.0
        self._in_flight: dict[tuple[str, str], bytes] = {}
        # Keys whose request finished (and was charged) but whose completion could not be written:
        # the SQL row still says in_flight and the charge may not be in SQL yet, so memory must refuse them.
        self._unrecorded: set[tuple[str, str]] = set()

    async def begin(
        self, key_id: str, idempotency_key: str, fingerprint: bytes, *, request_id: str | None = None
    ) -> StoredResponse | None:
        """None: proceed (the lock is taken). A StoredResponse: replay it. Otherwise raises the 409/422."""
        check_idempotency_key(idempotency_key)
        if not isinstance(key_id, str) or not 0 < len(key_id) <= 64:
            raise ValueError("key_id must be 1 to 64 characters")
        if request_id is not None and len(request_id) > 128:
            raise ValueError("request_id must be at most 128 characters")
        if not isinstance(fingerprint, bytes) or not 0 < len(fingerprint) <= _MAX_FINGERPRINT_BYTES:
            raise ValueError(f"fingerprint must be 1 to {_MAX_FINGERPRINT_BYTES} bytes (a sha256 digest)")
        lock = (key_id, idempotency_key)
        if lock in self._unrecorded:
            raise errors.idempotency_replay_unavailable()
        running = self._in_flight.get(lock)
        if running is not None:
            raise errors.idempotency_key_reused() if running != fingerprint else errors.idempotency_key_in_use()
        now = time.time()
        finished = self._recent_record(lock, now)
        if finished is not None:
            if finished.fingerprint != fingerprint:
                raise errors.idempotency_key_reused()
            if finished.response is None:
                raise errors.idempotency_replay_unavailable()
            return finished.response
        # Taken before the first await: a concurrent begin for the same key sees it.
        self._in_flight[lock] = fingerprint
        try:
            purge = now >= self._next_purge
            if purge:
                self._next_purge = now + self._purge_interval
            row = {
                "key_id": key_id,
                "idempotency_key": idempotency_key,
                "fingerprint": fingerprint,
                "state": "in_flight",
                "request_id": request_id,
                "created_at": now,
                "expires_at": now + self._retention,
            }

            def work(session: Session) -> tuple[_Outcome, StoredResponse | None]:
                if purge:
                    _purge(session, now)
                if _rowcount(session.execute(self._insert_in_flight, row)) == 1:
                    return "proceed", None  # a fresh key: the common case, and no read
                return self._begin_in_sql(session, lock, fingerprint, request_id, now)

            outcome, stored = await self._commits.run(work)
        except BaseException:
            del self._in_flight[lock]
            raise
        if outcome == "proceed":
            return None
        del self._in_flight[lock]
        if outcome == "reused":
            raise errors.idempotency_key_reused()
        if outcome == "unavailable":
            raise errors.idempotency_replay_unavailable()
        return stored

    def _begin_in_sql(
        self, session: Session, lock: tuple[str, str], fingerprint: bytes, request_id: str | None, now: float
    ) -> tuple[_Outcome, StoredResponse | None]:
        key_id, idempotency_key = lock
        record = session.get(IdempotencyRecord, lock, with_for_update=True)
        if record is not None and record.expires_at <= now:
            session.delete(record)
            session.flush()
            record = None
        if record is None:
            session.add(
                IdempotencyRecord(
                    key_id=key_id,
                    idempotency_key=idempotency_key,
                    fingerprint=fingerprint,
                    state="in_flight",
                    request_id=request_id,
                    created_at=now,
                    expires_at=now + self._retention,
                )
            )
            return "proceed", None
        if record.fingerprint != fingerprint:
            return "reused", None
        if record.state == "complete":
            headers = tuple((str(name), str(value)) for name, value in orjson.loads(record.headers or "[]"))
            return "replay", StoredResponse(int(record.status or 0), headers, bytes(record.body or b""))
        if record.state in ("too_large", "lost"):
            return "unavailable", None
        # An in_flight row nobody in this process holds: a crash abandoned it.
        if record.request_id is not None and _was_charged(session, record.request_id):
            record.state = "lost"
            return "unavailable", None
        record.request_id = request_id
        record.created_at = now
        record.expires_at = now + self._retention
        return "proceed", None

    async def complete(self, key_id: str, idempotency_key: str, response: StoredResponse) -> None:
        """Store the finished response (durably) before it is sent; bodies over the limit keep only the fact."""
        await self._finish(key_id, idempotency_key, response, len(response.body) <= self._max_replay_bytes)

    async def complete_without_replay(self, key_id: str, idempotency_key: str, status: int) -> None:
        """Record that a request finished (and was charged) without keeping its response: a stream.

        Repeats get 409 ``idempotency_replay_unavailable``: never re-run, never re-charged.
        """
        await self._finish(key_id, idempotency_key, StoredResponse(status, (), b""), False)

    async def _finish(self, key_id: str, idempotency_key: str, response: StoredResponse, fits: bool) -> None:
        lock = (key_id, idempotency_key)
        fingerprint = self._in_flight.get(lock)
        if fingerprint is None:
            raise RuntimeError("complete() without a matching begin()")
        values: dict[str, Any] = {
            "state": "complete" if fits else "too_large",
            "status": response.status,
            "headers": orjson.dumps([list(pair) for pair in response.headers]).decode() if fits else None,
            "body": response.body if fits else None,
        }
        finished_at = time.time()

        def work(session: Session) -> float:
            """Returns the record's expiry."""
            result = session.execute(
                update(_RECORDS)
                .where(_RECORDS.c.key_id == key_id, _RECORDS.c.idempotency_key == idempotency_key)
                .values(values)
                .returning(_RECORDS.c.expires_at)
            )
            expires_at = result.scalar()
            if expires_at is not None:
                return float(expires_at)
            # Purged meanwhile (a request longer than the retention): write it again.
            row = {"key_id": key_id, "idempotency_key": idempotency_key, "fingerprint": fingerprint, **values}
            row.update(created_at=finished_at, expires_at=finished_at + self._retention)
            session.execute(_RECORDS.insert(), row)
            return finished_at + self._retention

        try:
            expires_at = await self._commits.run(work)
        except BaseException:
            self._unrecorded.add(lock)
            raise
        finally:
            del self._in_flight[lock]
        self._remember(lock, _Finished(fingerprint, response if fits else None, expires_at))

    async def abandon(self, key_id: str, idempotency_key: str) -> None:
        """The request failed before it was charged: forget it so the key can be retried."""
        lock = (key_id, idempotency_key)
        if lock not in self._in_flight:
            return

        def work(session: Session) -> None:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.key_id == key_id,
                    IdempotencyRecord.idempotency_key == idempotency_key,
                    IdempotencyRecord.state == "in_flight",
                )
            )

        try:
            await self._commits.run(work)
        finally:
            del self._in_flight[lock]

    def _recent_record(self, lock: tuple[str, str], now: float) -> _Finished | None:
        finished = self._recent.get(lock)
        if finished is not None and finished.expires_at <= now:  # expired: as good as absent
            self._forget(lock)
            return None
        return finished

    def _remember(self, lock: tuple[str, str], finished: _Finished) -> None:
        self._forget(lock)
        self._recent[lock] = finished
        self._recent_bytes += len(finished.response.body) if finished.response is not None else 0
        while len(self._recent) > _RECENT_RECORDS or self._recent_bytes > _RECENT_BYTES:
            self._forget(next(iter(self._recent)))

    def _forget(self, lock: tuple[str, str]) -> None:
        finished = self._recent.pop(lock, None)
        if finished is not None and finished.response is not None:
            self._recent_bytes -= len(finished.response.body)

    async def purge_expired(self) -> int:
        """Delete records past their retention now; returns how many went."""
        now = time.time()
        total = 0
        while True:
            removed = await self._db.run(lambda session: _purge(session, now))
            total += removed
            if removed < _PURGE_BATCH:
                return total


def _purge(session: Session, now: float) -> int:
    """Delete up to about one batch of expired records, oldest first."""
    expires = IdempotencyRecord.expires_at
    batch_end = session.scalar(
        select(expires).where(expires <= now).order_by(expires).offset(_PURGE_BATCH - 1).limit(1)
    )
    result = session.execute(delete(IdempotencyRecord).where(expires <= (now if batch_end is None else batch_end)))
    return int(getattr(result, "rowcount", 0) or 0)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _was_charged(session: Session, request_id: str) -> bool:
    charged = select(LedgerEntry.id).where(LedgerEntry.request_id == request_id, LedgerEntry.kind == "charge")
    return session.execute(charged.limit(1)).first() is not None
