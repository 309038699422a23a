"""Fixtures: a real gateway (``runinfra serve``) in front of a real llama.cpp server, and real Chromium.

One gateway serves the whole dashboard suite, started with the core's test
harness (:mod:`runinfra_gateway.testing`): an upstream SmolLM2 deployment, an
upstream deployment whose engine is down (so one deployment fails verification
with a real probe message), embedded flite (text to speech) and PocketSphinx
(speech to text), and a voice pipeline over three of them.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from runinfra_gateway.testing import GatewayProcess, LlamaServer, free_port

from .http_session import DashboardSession

__all__ = ["free_port"]

REPO_ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = REPO_ROOT / "artifacts" / "screenshots"
BIN = Path(sys.executable).parent
ADMIN_TOKEN = "dashboard-suite-admin-token-0123456789"
WORKSPACE = "default"
PIPELINE = "voice"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass(frozen=True)
class Gateway:
    process: GatewayProcess
    admin_token: str

    @property
    def origin(self) -> str:  # http://127.0.0.1:PORT
        return self.process.base_url

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def dashboard(self) -> str:
        return f"{self.origin}/dashboard"

    def output(self) -> str:
        """Everything the gateway printed and logged so far."""
        return self.process.stdout() + "\n" + self.process.stderr()

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.origin}/admin/v1{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def new_key(self, scope: str = "workspace", **extra: str) -> dict[str, Any]:
        body: dict[str, Any] = {"scope": scope, **extra}
        if scope == "workspace":
            body.setdefault("workspace_id", WORKSPACE)
        result: dict[str, Any] = self.admin("POST", "/keys", body)
        return result


WORKSPACES: list[dict[str, Any]] = [
    {"id": WORKSPACE, "name": "Default workspace", "credits_cents": 500},
    {"id": "acme", "name": "Acme Corp", "credits_cents": 0},
]


def suite_deployments(upstream: str) -> dict[str, Any]:
    """A verified upstream LLM, an upstream whose engine is down, flite, PocketSphinx and a voice pipeline."""
    return {
        "deployments": [
            {"id": "smollm2", "backend": "upstream", "base_url": upstream, "model": "smollm2",
             "operations": ["chat.completions", "responses"],
             "prices": {"input_per_1k_tokens": 0.01, "output_per_1k_tokens": 0.02}},
            {"id": "broken-llm", "backend": "upstream", "base_url": f"http://127.0.0.1:{free_port()}/v1",
             "operations": ["chat.completions"], "timeout_seconds": 5},
            {"id": "flite-tts", "backend": "embedded", "engine": "flite", "operations": ["audio.speech"],
             "prices": {"per_1k_characters": 0.5}},
            {"id": "sphinx-stt", "backend": "embedded", "engine": "pocketsphinx",
             "operations": ["audio.transcriptions"], "prices": {"per_audio_second": 0.01}},
        ],
        "pipelines": [{"id": PIPELINE, "workspace": WORKSPACE, "deployments": {
            "speech_to_text": "sphinx-stt", "llm": "smollm2", "text_to_speech": "flite-tts"}}],
    }


@contextmanager
def serve_gateway(
    workdir: Path, *, deployments: dict[str, Any] | None = None, server: dict[str, Any] | None = None
) -> Iterator[Gateway]:
    """``runinfra serve --config … --port 0`` (the core's test harness); yields once verification finished."""
    config = {
        "server": {"access_log": True, **(server or {})},
        # The webhook receiver of the tests listens on loopback, which the URL policy refuses unless allowed.
        "webhooks": {"allowed_hosts": ["127.0.0.1"]},
        "workspaces": WORKSPACES,
        **(deployments or {}),
    }
    process = GatewayProcess(workdir, config=config, admin_token=ADMIN_TOKEN)
    process.start(timeout=240)
    try:
        yield Gateway(process=process, admin_token=ADMIN_TOKEN)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def gateway(llama: LlamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The suite's gateway (see :func:`suite_deployments`)."""
    with serve_gateway(tmp_path_factory.mktemp("gateway"), deployments=suite_deployments(llama.base_url)) as gw:
        yield gw


@pytest.fixture
def browser_session(gateway: Gateway) -> DashboardSession:
    """A signed-in cookie session on the suite's gateway, spoken over plain HTTP (see :mod:`.http_session`)."""
    session = DashboardSession(gateway.dashboard)
    assert session.login(gateway.admin_token).status == 303
    return session


# -- the browser -----------------------------------------------------------------------------------


# Module scope: sync Playwright keeps an event loop running in this thread until it closes,
# which would break every later suite that calls asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), "Debian's chromium is missing (scripts/setup)"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page, 1280x860; fails the test on a script or CSP error."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(60_000)  # the CPU is shared with model engines
    problems: list[str] = []
    new_page = context.new_page()
    # Refused logins and forms answer 4xx on purpose; Chromium logs those loads, which are not script errors.
    new_page.on("console", lambda message: problems.append(message.text)
                if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    new_page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield new_page
    finally:
        context.close()
    assert not problems, f"script or Content-Security-Policy errors in the page: {problems}"


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # a page opened at an #anchor would shift its sticky sidebar
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page: Any, gateway: Gateway, token: str | None = None) -> None:
    page.goto(f"{gateway.dashboard}/login")
    page.fill("#admin_token", token or gateway.admin_token)
    page.click("button[type=submit]")
