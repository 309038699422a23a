"""Sign-in, sessions and forms over real HTTP against ``runinfra serve``: CSRF, cookies, one-time secrets."""

from __future__ import annotations

import http.client
import http.cookiejar
import re
from pathlib import Path

from runinfra_gateway.testing import LlamaServer

from .conftest import WORKSPACE, Gateway, serve_gateway
from .http_session import DashboardSession

SESSION_COOKIE = "runinfra_dashboard_session"


def _key_count(gateway: Gateway) -> int:
    return len([k for k in gateway.admin("GET", f"/keys?workspace_id={WORKSPACE}")["data"] if not k["revoked"]])


def _balance(gateway: Gateway) -> float:
    balance: float = gateway.admin("GET", f"/workspaces/{WORKSPACE}/credits")["balance_cents"]
    return balance


def test_login_needs_the_form_token_and_the_right_admin_token(gateway: Gateway) -> None:
    anonymous = DashboardSession(gateway.dashboard)
    # No login-form cookie: refused even with the right token (login CSRF).
    refused = anonymous.post("/login", {"csrf_token": "forged", "admin_token": gateway.admin_token})
    assert refused.status == 403
    assert anonymous.cookie(SESSION_COOKIE) is None

    form = anonymous.get("/login")
    wrong = anonymous.post("/login", {"csrf_token": form.csrf(), "admin_token": "wrong-admin-token-123456"})
    assert wrong.status == 401
    assert "not valid for this gateway" in wrong.body
    assert anonymous.cookie(SESSION_COOKIE) is None
    assert anonymous.get("/settings/api-keys").location == "/dashboard/login"

    ok = anonymous.login(gateway.admin_token)
    assert ok.status == 303
    assert ok.location == "/dashboard/"
    cookie = next(c for c in ok.set_cookies() if c.startswith(SESSION_COOKIE + "="))
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/dashboard" in attributes
    assert "secure" not in attributes  # plain http on loopback; Secure is set when served over https
    assert gateway.admin_token not in cookie
    assert anonymous.get("/settings/api-keys").status == 200


def test_the_session_cookie_is_secure_behind_an_https_proxy(gateway: Gateway) -> None:
    # uvicorn trusts X-Forwarded-Proto from loopback, where a TLS-terminating proxy would sit.
    session = DashboardSession(gateway.dashboard)
    form = session.get("/login")
    answer = session.post("/login", {"csrf_token": form.csrf(), "admin_token": gateway.admin_token},
                          headers={"X-Forwarded-Proto": "https"})
    assert answer.status == 303
    cookie = next(c for c in answer.set_cookies() if c.startswith(SESSION_COOKIE + "="))
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_a_form_posted_without_its_csrf_token_is_refused(gateway: Gateway, browser_session: DashboardSession) -> None:
    keys, balance = _key_count(gateway), _balance(gateway)
    for token in (None, "", "not-the-token", browser_session.csrf() + "x"):
        fields = {"scope": "workspace", "workspace_id": WORKSPACE, "name": "csrf"}
        if token is not None:
            fields["csrf_token"] = token
        assert browser_session.post("/settings/api-keys", fields).status == 403
        topup = {"workspace_id": WORKSPACE, "cents": "100"} | ({"csrf_token": token} if token is not None else {})
        assert browser_session.post("/credits/topup", topup).status == 403
        assert browser_session.post("/logout", {} if token is None else {"csrf_token": token}).status == 403
    assert _key_count(gateway) == keys
    assert _balance(gateway) == balance
    assert browser_session.get("/settings/api-keys").status == 200  # still signed in

    # Another session's token does not work either.
    other = DashboardSession(gateway.dashboard)
    other.login(gateway.admin_token)
    stolen = other.csrf()
    assert browser_session.post("/credits/topup", {"csrf_token": stolen, "workspace_id": WORKSPACE,
                                                   "cents": "5"}).status == 403
    assert _balance(gateway) == balance


def test_logout_ends_the_session_for_good(gateway: Gateway, browser_session: DashboardSession) -> None:
    csrf = browser_session.csrf()
    old_cookie = browser_session.cookie(SESSION_COOKIE)
    out = browser_session.post("/logout", {"csrf_token": csrf})
    assert out.status == 303
    assert out.location == "/dashboard/login"
    assert browser_session.cookie(SESSION_COOKIE) is None
    # Replaying the old cookie (a copy an attacker kept) gets nothing.
    replay = DashboardSession(gateway.dashboard)
    replay.jar.set_cookie(_cookie(SESSION_COOKIE, old_cookie or "", gateway))
    assert replay.get("/settings/api-keys").location == "/dashboard/login"
    keys = _key_count(gateway)
    refused = replay.post("/settings/api-keys", {"csrf_token": csrf, "scope": "workspace", "workspace_id": WORKSPACE})
    assert refused.status == 401
    assert _key_count(gateway) == keys


def test_sign_out_everywhere_revokes_every_session(gateway: Gateway) -> None:
    first, second = DashboardSession(gateway.dashboard), DashboardSession(gateway.dashboard)
    first.login(gateway.admin_token)
    second.login(gateway.admin_token)
    assert second.get("/deployments").status == 200
    assert first.post("/sessions/revoke", {"csrf_token": first.csrf()}).status == 303
    assert second.get("/deployments").location == "/dashboard/login"
    assert first.get("/deployments").location == "/dashboard/login"


def test_a_new_secret_is_shown_once_and_never_in_urls_html_or_logs(
    gateway: Gateway, browser_session: DashboardSession
) -> None:
    created = browser_session.post("/settings/api-keys", {
        "csrf_token": browser_session.csrf(), "scope": "workspace", "workspace_id": WORKSPACE, "name": "once",
    })
    assert created.status == 303
    assert created.location == "/dashboard/settings/api-keys#new-key"
    first = browser_session.get("/settings/api-keys")
    match = re.search(r'data-testid="one-time-secret">([^<]+)<', first.body)
    assert match is not None
    secret = match.group(1).strip()
    assert first.headers["cache-control"] == "no-store"
    for path in ("/settings/api-keys", "/deployments", "/deploy/smollm2", "/pipelines/voice/deploy", "/credits"):
        assert secret not in browser_session.get(path).body
    assert secret not in gateway.output()
    assert gateway.admin_token not in gateway.output()
    assert secret[8:] not in created.location  # nothing of it in the redirect


def test_pages_carry_security_headers_and_serve_their_own_assets(
    gateway: Gateway, browser_session: DashboardSession
) -> None:
    page = browser_session.get("/deployments")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-request-id"]
    assert "style=" not in page.body  # inline styles would be blocked by the CSP
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.body)
    assert assets
    assert all(asset.startswith("/dashboard/") for asset in assets), assets  # no CDN, no external origin
    for asset in {a for a in assets if "/static/" in a}:
        answer = browser_session.get(asset.removeprefix("/dashboard"))
        assert answer.status == 200
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_hostile_form_input_is_refused_or_neutralised(gateway: Gateway, browser_session: DashboardSession) -> None:
    csrf = browser_session.csrf()
    # The workspace switcher's return path cannot become an open redirect.
    for target in ("//evil.example/", "https://evil.example/dashboard/", "/dashboard//evil.example", "/\\evil"):
        answer = browser_session.post("/workspace", {"csrf_token": csrf, "workspace_id": WORKSPACE, "next": target})
        assert answer.status == 303
        assert answer.location == "/dashboard/"
    # A scope, pipeline or workspace that does not exist creates nothing and says why.
    keys = _key_count(gateway)
    for fields in ({"scope": "admin"}, {"scope": "pipeline", "pipeline_id": "no-such-pipeline"},
                   {"scope": "workspace", "workspace_id": "no-such-workspace"}):
        answer = browser_session.post("/settings/api-keys", {"csrf_token": csrf, **fields})
        assert answer.status == 303
        assert "notice-error" in browser_session.get("/settings/api-keys").body
    assert _key_count(gateway) == keys
    # Amounts that are not numbers leave the balance alone.
    balance = _balance(gateway)
    for cents in ("abc", "nan", "1e400", "-inf", ""):
        browser_session.post("/credits/topup", {"csrf_token": csrf, "workspace_id": WORKSPACE, "cents": cents})
        assert "notice-error" in browser_session.get("/credits").body
    assert _balance(gateway) == balance
    # Markup in a key name is shown as text.
    browser_session.post("/settings/api-keys", {"csrf_token": csrf, "scope": "workspace", "workspace_id": WORKSPACE,
                                                "name": "<script>alert(1)</script>"})
    listing = browser_session.get("/settings/api-keys").body
    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    # A flood of form fields is refused before any work; the dashboard keeps serving.
    flood = [("csrf_token", csrf)] + [(f"f{i}", "x") for i in range(2000)]
    assert browser_session.post("/settings/api-keys", flood).status == 400
    # Unknown or traversing ids are plain 404 pages.
    for path in ("/deploy/no-such-model", "/deploy/..%2F..%2Fetc%2Fpasswd", "/pipelines/nope/deploy"):
        assert browser_session.get(path).status == 404
    assert browser_session.get("/deployments").status == 200


def test_repeated_wrong_tokens_are_throttled(tmp_path: Path) -> None:
    # A gateway of its own (no deployments): the throttle would lock the shared one out for minutes.
    with serve_gateway(tmp_path) as gateway:
        session = DashboardSession(gateway.dashboard)
        for _ in range(10):
            form = session.get("/login")
            guess = session.post("/login", {"csrf_token": form.csrf(), "admin_token": "guess-123456789012"})
            assert guess.status == 401
        form = session.get("/login")
        blocked = session.post("/login", {"csrf_token": form.csrf(), "admin_token": gateway.admin_token})
        assert blocked.status == 429
        assert session.cookie(SESSION_COOKIE) is None


def _cookie(name: str, value: str, gateway: Gateway) -> http.cookiejar.Cookie:
    host = gateway.origin.split("//", 1)[1].split(":")[0]
    return http.cookiejar.Cookie(
        0, name, value, None, False, host, False, False, "/dashboard", True, False, None, False, None, None, {}
    )


def test_the_workspace_switch_scopes_keys_and_credits(gateway: Gateway, browser_session: DashboardSession) -> None:
    gateway.new_key(name="only-in-default")
    assert "only-in-default" in browser_session.get("/settings/api-keys").body
    csrf = browser_session.csrf()
    switched = browser_session.post("/workspace", {"csrf_token": csrf, "workspace_id": "acme",
                                                   "next": "/dashboard/credits"})
    assert switched.location == "/dashboard/credits"
    assert "only-in-default" not in browser_session.get("/settings/api-keys").body
    assert 'data-testid="balance">$0.00<' in browser_session.get("/credits").body
    # An unknown workspace id is ignored, not stored.
    browser_session.post("/workspace", {"csrf_token": csrf, "workspace_id": "../default", "next": "/dashboard/"})
    assert "only-in-default" not in browser_session.get("/settings/api-keys").body
    browser_session.post("/workspace", {"csrf_token": csrf, "workspace_id": WORKSPACE, "next": "/dashboard/"})
    assert "only-in-default" in browser_session.get("/settings/api-keys").body


def test_unknown_pages_and_the_bare_mount_point(gateway: Gateway, browser_session: DashboardSession) -> None:
    bare = browser_session.get("")
    assert (bare.status, bare.location) == (308, "/dashboard/")
    missing = browser_session.get("/no/such/page")
    assert missing.status == 404
    assert "Nothing here" in missing.body
    assert browser_session.get("/credits/").status == 404  # a stray slash is not redirected either
    assert browser_session.get("/static/../templates/base.html").status == 404
    assert browser_session.post("/deployments", {"csrf_token": browser_session.csrf()}).status == 405


def test_oversized_form_bodies_are_refused_before_they_are_buffered(
    gateway: Gateway, browser_session: DashboardSession
) -> None:
    keys = _key_count(gateway)
    host, port = gateway.origin.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        # A declared size over the limit is answered before a byte of the body is sent.
        connection.putrequest("POST", "/dashboard/settings/api-keys")
        connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        connection.putheader("Content-Length", str(600_000))
        connection.endheaders()
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        # No Content-Length: a chunked body is counted as it arrives and cut off at the limit
        # (fields below the per-field limit, so only the total is over).
        chunks = [f"f{i}=".encode() + b"a" * 60_000 + b"&" for i in range(5)]  # 300 KB: just over
        connection.request("POST", "/dashboard/login", body=iter(chunks), encode_chunked=True,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert _key_count(gateway) == keys
    assert browser_session.get("/deployments").status == 200


def test_snippets_use_the_configured_public_base_url(llama: LlamaServer, tmp_path: Path) -> None:
    only_llm = {"deployments": [{"id": "smollm2", "backend": "upstream", "base_url": llama.base_url,
                                 "model": "smollm2", "operations": ["chat.completions"]}]}
    with serve_gateway(tmp_path, deployments=only_llm, server={"public_base_url": "https://gw.example.com"}) as gw:
        session = DashboardSession(gw.dashboard)
        session.login(gw.admin_token)
        page = session.get("/deploy/smollm2").body
        assert 'base_url=&#34;https://gw.example.com/v1&#34;' in page
        assert "https://gw.example.com/v1/chat/completions" in page
        assert gw.origin not in page
