"""A tiny admin API client for the CLI (standard library only; the token never reaches output)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message
from typing import Any
from urllib.parse import quote, urlsplit

from runinfra_gateway.peer_text import printable

__all__ = ["AdminClient", "AdminError"]


class AdminError(Exception):
    """The gateway refused an admin call, or could not be reached."""

    def __init__(
        self, message: str, *, status: int | None = None, type: str | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.timed_out = timed_out  # reached (perhaps), but no answer within the client's timeout


def _root(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AdminError(f"--base-url must be an http(s) URL, got {base_url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise AdminError("--base-url must not carry credentials, a query or a fragment")
    path = parts.path.rstrip("/")
    for suffix in ("/admin/v1", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return f"{parts.scheme}://{parts.netloc}{path}"


class AdminClient:
    def __init__(self, base_url: str, admin_token: str, *, timeout: float = 30.0) -> None:
        self.root = _root(base_url)
        self._token = admin_token
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"AdminClient({self.root!r}, <token hidden>)"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in _root
            self.root + "/admin/v1" + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json",
                     "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                self._check_gateway(response.status, response.headers)
                raw = response.read()
            try:
                return json.loads(raw or b"null")
            except (ValueError, RecursionError):
                raise AdminError(f"the gateway at {self.root} answered {method} {path} with a body that is not "
                                 "JSON") from None
        except urllib.error.HTTPError as exc:
            self._check_gateway(exc.code, exc.headers)
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                # Printed to the operator's terminal: what a server at --base-url sent must not act there.
                message, kind = printable(str(error.get("message")), 1000), printable(str(error.get("type")), 100)
            except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
                message, kind = f"HTTP {exc.code}", None
            raise AdminError(message, status=exc.code, type=kind) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise AdminError(f"the gateway at {self.root} did not answer within {self._timeout:g} s",
                                 timed_out=True) from None
            raise AdminError(f"cannot reach the gateway at {self.root}: {reason}") from None

    def _check_gateway(self, status: int, headers: Message) -> None:
        # Every answer of a runinfra gateway carries x-request-id; a URL that reaches some other server (a
        # wrong port, a proxy's error page) is named as such instead of failing on what that server says.
        if not headers.get("x-request-id"):
            kind = printable(headers.get("content-type") or "no content type", 200)
            raise AdminError(f"{self.root} does not answer like a runinfra gateway (HTTP {status}, {kind}, no "
                             "x-request-id): check --base-url / RUNINFRA_BASE_URL", status=status)

    @staticmethod
    def quote(segment: str) -> str:
        return quote(segment, safe="")
