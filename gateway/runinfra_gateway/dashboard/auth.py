"""Dashboard sign-in: the admin-token login form, the session guard and CSRF checks.

* Login posts the admin token in a form body (never a URL), guarded by a
  double-submit token: a random value in a short-lived ``SameSite=Strict``
  cookie that must match the form's hidden field.
* A signed-in browser holds an opaque session cookie (``HttpOnly``,
  ``SameSite=Strict``, ``Secure`` over https); every form posted afterwards
  must carry that session's CSRF token.
* Failed logins are counted per client address; too many in a window answer
  429 so the token cannot be guessed at speed.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runinfra_gateway.dashboard.render import prefix_of, render
from runinfra_gateway.dashboard.sessions import COOKIE_NAME, Session, SessionStore

__all__ = ["LOGIN_COOKIE_NAME", "DashboardAuth", "SessionHandler"]

LOGIN_COOKIE_NAME = "runinfra_dashboard_login"
LOGIN_FORM_TTL_SECONDS = 1800
MAX_FORM_FIELDS = 32
MAX_FIELD_BYTES = 64 * 1024
FAILED_LOGIN_WINDOW_SECONDS = 300.0
FAILED_LOGIN_LIMIT = 10

SessionHandler = Callable[[Request, Session], Awaitable[Response]]


class _FailedLogins:
    """Sliding-window count of failed sign-ins per client address."""

    def __init__(self, limit: int = FAILED_LOGIN_LIMIT, window: float = FAILED_LOGIN_WINDOW_SECONDS) -> None:
        self._limit = limit
        self._window = window
        self._times: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            times = self._prune(client, time.monotonic())
            return len(times) >= self._limit

    def record(self, client: str) -> None:
        with self._lock:
            self._prune(client, time.monotonic()).append(time.monotonic())
            if len(self._times) > 10_000:  # bound memory under a spray of addresses
                self._times.clear()

    def clear(self, client: str) -> None:
        with self._lock:
            self._times.pop(client, None)

    def _prune(self, client: str, now: float) -> deque[float]:
        times = self._times.setdefault(client, deque())
        while times and now - times[0] > self._window:
            times.popleft()
        return times


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


async def read_form(request: Request) -> FormData:
    """The posted form, bounded in fields and size (the dashboard never takes uploads)."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


class DashboardAuth:
    """Login, logout and the guard that every page handler runs behind."""

    def __init__(self, sessions: SessionStore, verify_admin_token: Callable[[str], bool]) -> None:
        self.sessions = sessions
        self._verify_admin_token = verify_admin_token
        self._failed = _FailedLogins()

    # -- cookies -------------------------------------------------------------------------

    def _set_cookie(self, response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=prefix_of(request) or "/",
            httponly=True,
            samesite="strict",
            secure=_is_https(request),
        )

    def _clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(
            name, path=prefix_of(request) or "/", httponly=True, samesite="strict", secure=_is_https(request)
        )

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE_NAME))

    # -- the guard -----------------------------------------------------------------------

    def guard(self, handler: SessionHandler) -> Callable[[Request], Awaitable[Response]]:
        """Run ``handler`` only for a live session; for a POST, only with that session's CSRF token."""

        async def guarded(request: Request) -> Response:
            session = self.session_of(request)
            if session is None:
                if request.method == "GET":
                    return RedirectResponse(f"{prefix_of(request)}/login", status_code=303)
                response = render(
                    request,
                    "error.html",
                    {"title": "Signed out", "heading": "You are signed out", "message": "Sign in again to continue."},
                    status_code=401,
                )
                self._clear_cookie(response, request, COOKIE_NAME)
                return response
            if request.method == "POST":
                form = await read_form(request)
                if not session.check_csrf(form_text(form, "csrf_token")):
                    return render(
                        request,
                        "error.html",
                        {
                            "title": "Form expired",
                            "heading": "This form could not be accepted",
                            "message": "Its security token is missing or stale. Reload the page and try again.",
                        },
                        session=session,
                        status_code=403,
                    )
            return await handler(request, session)

        return guarded

    # -- login / logout ------------------------------------------------------------------

    def _login_page(self, request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
        login_csrf = secrets.token_urlsafe(32)
        response = render(request, "login.html", {"title": "Sign in", "login_csrf": login_csrf, "error": error},
                          status_code=status_code)
        self._set_cookie(response, request, LOGIN_COOKIE_NAME, login_csrf, LOGIN_FORM_TTL_SECONDS)
        return response

    async def login_form(self, request: Request) -> Response:
        if self.session_of(request) is not None:
            return RedirectResponse(f"{prefix_of(request)}/", status_code=303)
        return self._login_page(request)

    async def login(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        if self._failed.blocked(client):
            return self._login_page(
                request, error="Too many failed sign-ins from this address. Wait a few minutes.", status_code=429
            )
        form = await read_form(request)
        expected = request.cookies.get(LOGIN_COOKIE_NAME, "")
        presented = form_text(form, "csrf_token")
        if not expected or not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
            return self._login_page(
                request, error="The sign-in form expired. It has been reloaded: try again.", status_code=403
            )
        token = form_text(form, "admin_token")
        if not token or not self._verify_admin_token(token):
            self._failed.record(client)
            return self._login_page(request, error="That admin token is not valid for this gateway.", status_code=401)
        self._failed.clear(client)
        stale = request.cookies.get(COOKIE_NAME)
        self.sessions.delete(stale)  # a fresh id on every sign-in: no session fixation
        session_id, _session = self.sessions.create()
        response = RedirectResponse(f"{prefix_of(request)}/", status_code=303)
        self._set_cookie(response, request, COOKIE_NAME, session_id, None)
        self._clear_cookie(response, request, LOGIN_COOKIE_NAME)
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        self.sessions.delete(request.cookies.get(COOKIE_NAME))
        response = RedirectResponse(f"{prefix_of(request)}/login", status_code=303)
        self._clear_cookie(response, request, COOKIE_NAME)
        return response

    async def revoke_all(self, request: Request, session: Session) -> Response:
        self.sessions.revoke_all()
        response = RedirectResponse(f"{prefix_of(request)}/login", status_code=303)
        self._clear_cookie(response, request, COOKIE_NAME)
        return response

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """404 (and 405) as a page of the dashboard, not a bare text line."""
        status = int(getattr(exc, "status_code", 404))
        return render(
            request,
            "error.html",
            {"title": "Not found", "heading": "Nothing here", "message": "This dashboard page does not exist."},
            session=self.session_of(request),
            status_code=status,
        )
