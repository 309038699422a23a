"""Rendering: the Jinja2 environment, the page context every template gets, security headers.

Templates autoescape everything; the only markup that bypasses escaping is the
inline SVG built by :mod:`runinfra_gateway.dashboard.charts` from numbers.
Every HTML answer is ``no-store`` (a page may hold a one-time secret) and
carries a strict Content-Security-Policy: no inline script, no third-party
origin, no framing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runinfra_gateway.dashboard.sessions import Session

__all__ = ["SecurityHeaders", "prefix_of", "render"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def prefix_of(request: Request) -> str:
    """The URL prefix the dashboard is mounted at (``/dashboard`` behind the gateway)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: Session | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    base: dict[str, Any] = {
        "prefix": prefix_of(request),
        "session": session,
        "title": "",
        "section": "",
        "workspaces": [],
        "workspace_id": None,
        "webhooks_available": False,
        "flashes": session.pop_flash() if session is not None else [],
        "current_path": request.url.path,
    }
    base.update(context)
    html = _environment.get_template(template).render(base)
    return HTMLResponse(html, status_code=status_code, headers={"cache-control": "no-store"})


class SecurityHeaders:
    """ASGI middleware adding the dashboard's security headers to every response (pages and assets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in _SECURITY_HEADERS if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
