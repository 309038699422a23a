"""Server-side dashboard sessions: an opaque cookie, a record kept in memory.

The cookie carries only a random session id; the server keeps the rest (the
CSRF token, the current workspace, a one-time secret waiting to be shown). The
store keys records by the id's SHA-256, so a memory dump or a log line holding
a key of the dict is not a usable cookie. Logging out deletes the record, and
:meth:`SessionStore.revoke_all` ends every session at once (after the admin
token changes, for instance). Records live in memory on purpose: a restart
logs everyone out, which is the safe default for an admin console.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

__all__ = ["COOKIE_NAME", "Session", "SessionStore"]

COOKIE_NAME = "runinfra_dashboard_session"
IDLE_TIMEOUT_SECONDS = 8 * 3600
ABSOLUTE_TIMEOUT_SECONDS = 24 * 3600
MAX_SESSIONS = 1000


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Session:
    """One signed-in browser: its CSRF token and what it is looking at."""

    csrf_token: str
    created_at: float
    last_seen: float
    workspace_id: str | None = None
    # A key secret created by this browser and not yet shown; popped on first view.
    pending_secret: dict[str, str] | None = None
    flash: list[tuple[str, str]] = field(default_factory=list)

    def check_csrf(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf_token.encode())

    def pop_pending_secret(self, kind: str = "api_key") -> dict[str, str] | None:
        """The secret waiting to be shown, if it is of ``kind`` (``api_key`` or ``webhook``); shown once."""
        if self.pending_secret is None or self.pending_secret.get("kind", "api_key") != kind:
            return None
        pending, self.pending_secret = self.pending_secret, None
        return pending

    def pop_flash(self) -> list[tuple[str, str]]:
        messages, self.flash = self.flash, []
        return messages

    def __repr__(self) -> str:  # never print tokens or secrets
        return f"Session(workspace_id={self.workspace_id!r}, created_at={self.created_at:.0f})"


class SessionStore:
    """Thread-safe map of session-id digests to :class:`Session` records."""

    def __init__(
        self,
        *,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        absolute_timeout: float = ABSOLUTE_TIMEOUT_SECONDS,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self._records: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._idle_timeout = idle_timeout
        self._absolute_timeout = absolute_timeout
        self._max_sessions = max_sessions

    def create(self) -> tuple[str, Session]:
        """Start a session; returns the cookie value (shown to the browser only) and the record."""
        now = time.monotonic()
        session_id = secrets.token_urlsafe(32)
        session = Session(csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen=now)
        with self._lock:
            self._expire(now)
            if len(self._records) >= self._max_sessions:
                oldest = min(self._records, key=lambda k: self._records[k].last_seen)
                del self._records[oldest]
            self._records[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id or len(session_id) > 128:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._records.get(_digest(session_id))
            if session is None:
                return None
            if self._is_expired(session, now):
                del self._records[_digest(session_id)]
                return None
            session.last_seen = now
            return session

    def delete(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._records.pop(_digest(session_id), None)

    def revoke_all(self) -> int:
        with self._lock:
            count = len(self._records)
            self._records.clear()
        return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def _is_expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self._idle_timeout or now - session.created_at > self._absolute_timeout

    def _expire(self, now: float) -> None:
        for digest in [d for d, s in self._records.items() if self._is_expired(s, now)]:
            del self._records[digest]
