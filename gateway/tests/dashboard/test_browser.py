"""The dashboard in real headless Chromium against a real gateway (``runinfra serve``).

Each test signs in through the login form, acts as a person would, and checks
the effect from outside the browser too: the SDK with the key the page showed,
and the snippets the Deploy view printed, run as written in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from runinfra import AuthenticationError, RunInfra, construct_webhook_event

from .conftest import PIPELINE, Gateway, login, screenshot

pytestmark = pytest.mark.slow


def _run_snippet(code: str, key: str, cwd: Path, *, language: str = "python") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
    env["RUNINFRA_API_KEY"] = key
    command = ["bash", "-c", code] if language == "shell" else [sys.executable, "-c", code]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=180, check=False)


def _snippet(page: Any, operation: str, flavour: str) -> str:
    code = page.locator(f'section.snippet[data-operation="{operation}"] [data-flavour="{flavour}"] code')
    text: str = code.text_content()
    return text


def _verified(gateway: Gateway, deployment_id: str) -> list[str]:
    for deployment in gateway.admin("GET", "/deployments")["data"]:
        if deployment["id"] == deployment_id:
            return list(deployment["verified_operations"])
    raise AssertionError(f"no deployment {deployment_id}")


def test_workspace_key_is_shown_once_works_in_the_sdk_and_dies_on_revoke(page: Any, gateway: Gateway) -> None:
    # A wrong admin token is refused on the form, with no session.
    login(page, gateway, token="not-the-admin-token-at-all")
    assert page.url.endswith("/dashboard/login")
    assert "not valid for this gateway" in page.inner_text(".notice-error")
    screenshot(page, "01-login-refused")

    login(page, gateway)
    assert page.url.endswith("/dashboard/deployments")

    page.goto(f"{gateway.dashboard}/settings/api-keys")
    assert page.is_checked("input[name=scope][value=workspace]")  # Scope: Workspace is the default
    page.fill("#key-name", "browser test key")
    page.click("form[data-scope-toggle] button[type=submit]")
    secret = page.inner_text("[data-testid=one-time-secret]").strip()
    assert len(secret) >= 32
    card = page.inner_text("#new-key")
    assert "only time the secret is shown" in card
    assert "RUNINFRA_API_KEY" in card
    page.click("#new-key button[data-copy-target]")
    # The clipboard write resolves asynchronously; the button says so once it has.
    page.wait_for_selector("#new-key button[data-copy-target][data-copied=true]")
    assert page.inner_text("#new-key button[data-copy-target]") == "Copied"
    screenshot(page, "02-api-keys-new-secret")

    # Reload: the secret is gone from the page for good.
    page.reload()
    assert page.locator("[data-testid=one-time-secret]").count() == 0
    assert secret not in page.content()
    row = page.locator("tr", has_text="browser test key")
    assert row.count() == 1
    assert "never" in row.inner_text()

    # The key works from the SDK against the same gateway...
    client = RunInfra(api_key=secret, base_url=gateway.base_url, max_retries=0)
    models = {m["id"]: m for m in client.models.list()["data"]}
    assert "smollm2" in models
    assert "broken-llm" not in models
    completion = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hi"}], max_tokens=8
    )
    assert completion["choices"][0]["message"]["content"] is not None

    page.reload()
    assert "never" not in page.locator("tr", has_text="browser test key").inner_text()  # last used is filled in
    screenshot(page, "03-api-keys-list")

    # ...until it is revoked from the page.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="browser test key").locator("button", has_text="Revoke").click()
    assert "is revoked" in page.inner_text(".notice-ok")
    assert page.locator("tr", has_text="browser test key").count() == 0
    with pytest.raises(AuthenticationError):
        client.models.list()


def test_deploy_view_lists_exactly_the_verified_operations_and_its_snippets_run(
    page: Any, gateway: Gateway, tmp_path: Path
) -> None:
    key = gateway.new_key(name="snippet runner")["secret"]
    login(page, gateway)

    page.goto(f"{gateway.dashboard}/deployments")
    failed = page.locator('[data-deployment="broken-llm"]')
    assert failed.locator("[data-testid=status]").inner_text() == "failed"
    failure = failed.locator("[data-testid=failure]").inner_text()
    assert "chat.completions probe:" in failure  # the failing probe, with its own message
    assert "connection refused" in failure.lower()
    assert failed.locator("a", has_text="Deploy").count() == 0
    failed.locator("button", has_text="Verify again").click()
    assert "broken-llm failed verification" in page.inner_text(".notice-error")
    failed = page.locator('[data-deployment="broken-llm"]')
    active = page.locator('[data-deployment="smollm2"]')
    assert active.locator("[data-testid=status]").inner_text() == "verified · active"

    active.locator("a", has_text="Deploy").click()
    assert page.url.endswith("/dashboard/deploy/smollm2")
    verified = _verified(gateway, "smollm2")
    shown = page.locator("[data-testid=verified-operations] .op").all_inner_texts()
    assert shown == verified == ["chat.completions", "responses"]
    sections = page.locator("section.snippet").evaluate_all("els => els.map(e => e.dataset.operation)")
    assert sections == verified
    screenshot(page, "05-deploy-deployment")

    for operation in verified:
        native = _snippet(page, operation, "native")
        assert f'base_url="{gateway.base_url}"' in native
        assert "pipeline_id" not in native
        assert '"smollm2"' in native
        done = _run_snippet(native, key, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()

        openai_code = _snippet(page, operation, "openai")
        assert "from openai import OpenAI" in openai_code
        assert f'base_url="{gateway.base_url}"' in openai_code
        done = _run_snippet(openai_code, key, tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()

        curl = _run_snippet(_snippet(page, operation, "curl"), key, tmp_path, language="shell")
        assert curl.returncode == 0, curl.stderr
        body = json.loads(curl.stdout)
        assert body.get("error") is None
        assert body["object"] == {"chat.completions": "chat.completion", "responses": "response"}[operation]

    # A deployment that failed verification gets no snippets at all.
    page.goto(f"{gateway.dashboard}/deploy/broken-llm")
    assert page.locator("section.snippet").count() == 0
    assert "has no verified operation" in page.content()


def test_pipeline_deploy_view_mints_a_pipeline_key_and_its_snippets_run(
    page: Any, gateway: Gateway, tmp_path: Path
) -> None:
    login(page, gateway)
    page.goto(f"{gateway.dashboard}/pipelines")
    screenshot(page, "06-pipelines")
    page.locator("tr", has_text=PIPELINE).locator("a", has_text="Deploy").click()

    page.fill("#pkey-name", "pipeline app")
    page.click("text=Create pipeline key")
    assert page.url.split("#")[0].endswith(f"/dashboard/pipelines/{PIPELINE}/deploy")
    key = page.inner_text("[data-testid=one-time-secret]").strip()
    assert "Pipeline scope" in page.inner_text("#new-key")
    screenshot(page, "07-deploy-pipeline-new-key")

    pipeline = next(p for p in gateway.admin("GET", "/pipelines")["data"] if p["id"] == PIPELINE)
    stage_ops = [op for dep in pipeline["deployments"].values() for op in _verified(gateway, dep)]
    shown = page.locator("[data-testid=verified-operations] .op").all_inner_texts()
    assert sorted(shown) == sorted(["voice.pipeline", *stage_ops])

    # Native: pipeline_id with the root /v1 base URL. OpenAI: the pipeline-scoped base URL.
    native = _snippet(page, "chat.completions", "native")
    assert f'base_url="{gateway.base_url}"' in native
    assert f'pipeline_id="{PIPELINE}"' in native
    openai_code = _snippet(page, "chat.completions", "openai")
    assert f'base_url="{gateway.base_url}/{PIPELINE}"' in openai_code
    assert page.locator('section.snippet[data-operation="voice.pipeline"] [data-flavour="openai"]').count() == 0

    # Run them in the order a person would: speech first (it writes speech.wav), then what reads it.
    order = ["audio.speech", "audio.transcriptions", "voice.pipeline", "chat.completions", "responses"]
    for operation in [op for op in order if op in shown]:
        for flavour in ("native", "openai"):
            locator = page.locator(f'section.snippet[data-operation="{operation}"] [data-flavour="{flavour}"]')
            if locator.count() == 0:
                continue
            done = _run_snippet(_snippet(page, operation, flavour), key, tmp_path)
            assert done.returncode == 0, f"{operation}/{flavour}: {done.stderr}"
            assert done.stdout.strip()
    page.reload()
    assert key not in page.content()


def test_usage_and_credits_page_tops_up_and_lists_requests(page: Any, gateway: Gateway) -> None:
    key = gateway.new_key(name="usage")["secret"]
    client = RunInfra(api_key=key, base_url=gateway.base_url, max_retries=0)
    response = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "1+1"}],
                                              max_tokens=4)
    request_id = response["_request_id"]
    login(page, gateway)
    page.goto(f"{gateway.dashboard}/credits")
    before = gateway.admin("GET", "/workspaces/default/credits")["balance_cents"]
    page.fill("#cents", "250")
    page.click("text=Apply")
    assert "Balance of default is now" in page.inner_text(".notice-ok")
    after = gateway.admin("GET", "/workspaces/default/credits")["balance_cents"]
    assert after == pytest.approx(before + 250)
    assert request_id in page.inner_text("table")
    assert page.locator("svg.chart").count() == 2
    logged = gateway.admin("GET", "/requests?workspace_id=default&limit=1000")["data"]
    assert page.inner_text("[data-testid=total-requests]") == str(len(logged))  # the SQL aggregate agrees
    screenshot(page, "08-usage-and-credits")

    page.goto(f"{gateway.dashboard}/deployments")
    assert page.locator('[data-deployment="smollm2"] svg.spark:not(.spark-empty)').count() == 2
    screenshot(page, "04-deployments")


def test_pages_are_legible_on_a_phone(browser: Any, gateway: Gateway) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        page = context.new_page()
        login(page, gateway)
        page.goto(f"{gateway.dashboard}/deploy/smollm2")
        # Nothing overflows sideways but the code blocks, which scroll inside themselves.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        screenshot(page, "10-mobile-deploy", full_page=False)
    finally:
        context.close()


def test_login_page_screenshot(page: Any, gateway: Gateway) -> None:
    page.goto(f"{gateway.dashboard}/login")
    assert page.locator("#admin_token[type=password]").count() == 1
    screenshot(page, "00-login")
    login(page, gateway)
    page.goto(f"{gateway.dashboard}/settings/session")
    screenshot(page, "11-session")


class _Receiver(BaseHTTPRequestHandler):
    """The customer's webhook endpoint: records each signed delivery and answers 200."""

    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).received.append((body, self.headers.get("runinfra-signature", "")))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_webhook_endpoint_secret_once_and_a_signed_test_delivery(page: Any, gateway: Gateway) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        login(page, gateway)
        page.goto(f"{gateway.dashboard}/webhooks")
        page.fill("#wh-url", url)
        page.fill("#wh-desc", "dashboard test receiver")
        page.click("button:has-text(\"Add endpoint\")")
        assert page.locator(".notice-error").count() == 0, page.inner_text(".notice-error")
        secret = page.inner_text("[data-testid=one-time-secret]").strip()
        assert "RUNINFRA_WEBHOOK_SECRET" in page.inner_text("#new-secret")
        row = page.locator("tr", has_text=url)
        row.locator("summary", has_text="Edit").click()
        row.locator("input[name=description]").fill("dashboard test receiver, edited")
        row.locator("input[value='webhook.test']").check()
        screenshot(page, "09b-webhooks-edit")
        row.locator("button", has_text="Save").click()
        assert f"Endpoint {url} is updated." in page.inner_text(".notice-ok")
        assert "dashboard test receiver, edited" in page.locator("tr", has_text=url).inner_text()
        assert "webhook.test" in page.locator("tr", has_text=url).inner_text()  # its one event type now
        page.locator("tr", has_text=url).locator("button", has_text="Send test").click()
        assert "webhook.test" in page.inner_text(".notice-ok")

        deadline = time.monotonic() + 30
        test_event: dict[str, Any] | None = None
        while test_event is None and time.monotonic() < deadline:
            for body, signature in list(_Receiver.received):
                event = construct_webhook_event(body, signature, secret)  # raises unless signed with it
                if event["type"] == "webhook.test":
                    test_event = event
            time.sleep(0.2)
        assert test_event is not None, "the test delivery never arrived"

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            page.reload()
            states = page.locator("[data-testid=delivery-state]").all_inner_texts()
            if "delivered" in states:
                break
            time.sleep(0.5)
        assert "delivered" in states
        assert secret not in page.content()
        screenshot(page, "09-webhooks")

        page.once("dialog", lambda dialog: dialog.accept())  # the data-confirm question
        page.locator("tr", has_text=url).locator("button", has_text="Delete").click()
        assert "is deleted" in page.inner_text(".notice-ok")
        assert page.locator("tr", has_text=url).count() == 0
    finally:
        server.shutdown()
