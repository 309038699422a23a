"""A cookie-keeping HTTP client that does not follow redirects: what a browser sends, inspectable."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message

__all__ = ["Answer", "DashboardSession"]

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: str

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    def set_cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie") or []

    def csrf(self) -> str:
        match = _CSRF.search(self.body)
        assert match is not None, "no CSRF token on the page"
        return match.group(1)


class DashboardSession:
    """One browser: its own cookie jar."""

    def __init__(self, dashboard_url: str) -> None:
        self.base = dashboard_url
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def _open(self, request: urllib.request.Request) -> Answer:
        try:
            with self._opener.open(request, timeout=60) as response:
                return Answer(response.status, response.headers, response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read().decode("utf-8", "replace"))

    def get(self, path: str) -> Answer:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, fields: dict[str, str] | list[tuple[str, str]],
             headers: dict[str, str] | None = None) -> Answer:
        data = urllib.parse.urlencode(fields).encode()
        request = urllib.request.Request(self.base + path, data=data, method="POST", headers=headers or {})
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._open(request)

    def login(self, admin_token: str) -> Answer:
        form = self.get("/login")
        return self.post("/login", {"csrf_token": form.csrf(), "admin_token": admin_token})

    def csrf(self) -> str:
        """The session's CSRF token, read from a page as a browser would."""
        return self.get("/settings/session").csrf()

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)
