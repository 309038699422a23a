"""The operator dashboard, served by the gateway under ``/dashboard``.

``create_app(state)`` builds a Starlette sub-application over the core's
:class:`~runinfra_gateway.state.GatewayState`; the gateway mounts it. Every
asset (CSS, JS, icons) is served from this package: no CDN.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from runinfra_gateway.dashboard import data
from runinfra_gateway.dashboard.auth import DashboardAuth
from runinfra_gateway.dashboard.body_limit import BodyLimit
from runinfra_gateway.dashboard.pages import Pages
from runinfra_gateway.dashboard.render import STATIC_DIR, SecurityHeaders
from runinfra_gateway.dashboard.sessions import SessionStore
from runinfra_gateway.dashboard.webhooks_page import WebhooksPage
from runinfra_gateway.state import GatewayState

__all__ = ["create_app"]


def create_app(state: GatewayState) -> Starlette:
    """The dashboard app for one gateway; sessions live as long as this app."""
    auth = DashboardAuth(SessionStore(), lambda token: data.admin_token_matches(state, token))
    pages = Pages(state, auth)
    webhooks = WebhooksPage(state, pages.context)
    guard = auth.guard
    routes = [
        Route("/login", auth.login_form, methods=["GET"]),
        Route("/login", auth.login, methods=["POST"]),
        Route("/logout", guard(auth.logout), methods=["POST"]),
        Route("/sessions/revoke", guard(auth.revoke_all), methods=["POST"]),
        Route("/", guard(pages.home), methods=["GET"]),
        Route("/workspace", guard(pages.switch_workspace), methods=["POST"]),
        Route("/settings/session", guard(pages.session_page), methods=["GET"]),
        Route("/settings/api-keys", guard(pages.keys_page), methods=["GET"]),
        Route("/settings/api-keys", guard(pages.create_key), methods=["POST"]),
        Route("/settings/api-keys/revoke", guard(pages.revoke_key), methods=["POST"]),
        Route("/deployments", guard(pages.deployments_page), methods=["GET"]),
        Route("/deployments/verify", guard(pages.verify_deployment), methods=["POST"]),
        Route("/deploy/{deployment_id:path}", guard(pages.deployment_deploy), methods=["GET"]),
        Route("/pipelines", guard(pages.pipelines_page), methods=["GET"]),
        Route("/pipelines/{pipeline_id}/deploy", guard(pages.pipeline_deploy), methods=["GET"]),
        Route("/credits", guard(pages.credits_page), methods=["GET"]),
        Route("/credits/topup", guard(pages.topup), methods=["POST"]),
        Route("/webhooks", guard(webhooks.page), methods=["GET"]),
        Route("/webhooks", guard(webhooks.create), methods=["POST"]),
        Route("/webhooks/action", guard(webhooks.act), methods=["POST"]),
        Route("/webhooks/edit", guard(webhooks.edit), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit)],
        exception_handlers={404: auth.not_found, 405: auth.not_found},
    )
    app.router.redirect_slashes = False  # a stray slash is a 404, not a redirect built from the Host header
    return app
