"""The ``runinfra`` console script's operator commands, run as a person would, against ``runinfra serve``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BIN, PIPELINE, Gateway, free_port

pytestmark = pytest.mark.slow


def runinfra(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
    return subprocess.run([str(BIN / "runinfra"), *args], env={**clean, **(env or {})}, input=stdin,
                          capture_output=True, text=True, timeout=180, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def key(gateway: Gateway) -> str:
    secret: str = gateway.new_key(name="cli")["secret"]
    return secret


def _env(gateway: Gateway, key: str | None = None, *, admin: bool = False) -> dict[str, str]:
    env = {"RUNINFRA_BASE_URL": gateway.base_url}
    if key:
        env["RUNINFRA_API_KEY"] = key
    if admin:
        env["RUNINFRA_ADMIN_TOKEN"] = gateway.admin_token
    return env


def test_every_command_has_help_with_its_exit_codes() -> None:
    top = runinfra("--help")
    assert top.returncode == 0
    for command in ("deployments", "models", "chat", "speak", "transcribe", "doctor"):
        assert command in top.stdout
    for words in (["deployments", "list"], ["deployments", "verify"], ["models"], ["chat"], ["speak"],
                  ["transcribe"], ["doctor"]):
        done = runinfra(*words, "--help")
        assert done.returncode == 0, words
        assert "exit codes: 0 success" in " ".join(done.stdout.split())


def test_bad_flags_and_missing_arguments_exit_2(gateway: Gateway, key: str) -> None:
    for args in (["chat", "smollm2", "hi", "--bogus"], ["chat"], ["speak", "flite-tts", "hi"],
                 ["chat", "smollm2", "hi", "--max-tokens", "0"], ["deployments"], ["transcribe", "sphinx-stt"]):
        done = runinfra(*args, env=_env(gateway, key))
        assert done.returncode == 2, (args, done.stderr)
        assert "usage: runinfra" in done.stderr
    missing = runinfra("transcribe", "sphinx-stt", "/no/such/file.wav", env=_env(gateway, key))
    assert missing.returncode == 2
    assert "cannot read /no/such/file.wav" in missing.stderr
    endless = runinfra("transcribe", "sphinx-stt", "/dev/zero", env=_env(gateway, key))  # no size to check first
    assert endless.returncode == 2
    assert "/dev/zero is over the limit of 26,214,400 bytes" in endless.stderr
    no_key = runinfra("models", env=_env(gateway))
    assert no_key.returncode == 2
    assert "RUNINFRA_API_KEY" in no_key.stderr


def test_deployments_list_and_verify(gateway: Gateway) -> None:
    table = runinfra("deployments", "list", env=_env(gateway, admin=True))
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert "verified active" in lines["smollm2"]
    assert "chat.completions, responses" in lines["smollm2"]
    assert " failed " in lines["broken-llm"]

    listed = json.loads(runinfra("deployments", "list", "--json", env=_env(gateway, admin=True)).stdout)
    assert {d["id"]: d["status"] for d in listed}["broken-llm"] == "failed"

    ok = runinfra("deployments", "verify", "smollm2", env=_env(gateway, admin=True))
    assert ok.returncode == 0, ok.stderr
    assert "smollm2: verified active" in ok.stdout
    assert "verifying smollm2" in ok.stderr  # progress goes to stderr
    failing = runinfra("deployments", "verify", "broken-llm", env=_env(gateway, admin=True))
    assert failing.returncode == 1
    assert "broken-llm: failed:" in failing.stdout
    unknown = runinfra("deployments", "verify", "no-such-deployment", env=_env(gateway, admin=True))
    assert unknown.returncode == 1
    assert "not_found_error" in unknown.stderr


def test_models_chat_speak_and_transcribe(gateway: Gateway, key: str, tmp_path: Path) -> None:
    models = runinfra("models", env=_env(gateway, key))
    assert models.returncode == 0, models.stderr
    assert models.stdout.splitlines()[0].split() == ["MODEL", "OPERATIONS", "VOICES"]
    listed = json.loads(runinfra("models", "--json", env=_env(gateway, key)).stdout)
    by_id = {m["id"]: m for m in listed}
    assert "broken-llm" not in by_id
    voice = by_id["flite-tts"]["voices"][0]

    chat = runinfra("chat", "smollm2", "Name a colour.", "--max-tokens", "12", "-v", env=_env(gateway, key))
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip()
    assert "request_id=" in chat.stderr
    piped = runinfra("chat", "smollm2", "--max-tokens", "8", "--json", env=_env(gateway, key), stdin="Say yes.")
    assert json.loads(piped.stdout)["object"] == "chat.completion"

    wav = tmp_path / "hello.wav"
    speak = runinfra("speak", "flite-tts", "Hello from the command line.", "-o", str(wav), "--voice", voice,
                     env=_env(gateway, key))
    assert speak.returncode == 0, speak.stderr
    assert wav.read_bytes()[:4] == b"RIFF"
    assert f"wrote {wav}" in speak.stdout

    text = runinfra("transcribe", "sphinx-stt", str(wav), env=_env(gateway, key))
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip()
    verbose = json.loads(runinfra("transcribe", "sphinx-stt", str(wav), "--json", env=_env(gateway, key)).stdout)
    assert verbose["duration"] > 0.5

    unsupported = runinfra("speak", "smollm2", "hi", "-o", str(tmp_path / "x.wav"), "--voice", voice,
                           env=_env(gateway, key))
    assert unsupported.returncode == 1  # a typed gateway error, never a silent fallback
    assert "request_id=" in unsupported.stderr


def test_a_pipeline_key_sees_its_pipeline(gateway: Gateway) -> None:
    pipeline_key = gateway.new_key("pipeline", pipeline_id=PIPELINE)["secret"]
    listed = runinfra("models", "--json", "--pipeline", PIPELINE, env=_env(gateway, pipeline_key))
    assert listed.returncode == 0, listed.stderr
    assert {m["id"] for m in json.loads(listed.stdout)} == {"smollm2", "flite-tts", "sphinx-stt"}

    outside = runinfra("models", env=_env(gateway, pipeline_key))
    assert outside.returncode == 3
    assert "pipeline_scope_violation" in outside.stderr
    doctor = runinfra("doctor", env=_env(gateway, pipeline_key))
    assert "[FAIL] API key scope: pipeline_scope_violation" in doctor.stdout
    assert "--pipeline" in doctor.stdout
    scoped = runinfra("doctor", "--pipeline", PIPELINE, env=_env(gateway, pipeline_key))
    assert f"[ok  ] API key: accepted; scope: pipeline {PIPELINE}" in scoped.stdout


def test_wrong_key_wrong_token_and_unreachable_gateway_have_their_own_exit_codes(gateway: Gateway) -> None:
    wrong_key = "rik_this-key-does-not-exist-anywhere-0000000000"
    refused = runinfra("chat", "smollm2", "hi", env=_env(gateway, wrong_key))
    assert refused.returncode == 3
    assert "API key was refused" in refused.stderr
    assert wrong_key not in refused.stderr + refused.stdout

    token = runinfra("deployments", "list", "--admin-token", "not-the-admin-token-000", env=_env(gateway))
    assert token.returncode == 3
    assert "admin token was refused" in token.stderr
    assert "not-the-admin-token-000" not in token.stderr

    nowhere = {"RUNINFRA_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "RUNINFRA_API_KEY": wrong_key,
               "RUNINFRA_ADMIN_TOKEN": gateway.admin_token}
    assert runinfra("models", env=nowhere).returncode == 4
    assert runinfra("deployments", "list", env=nowhere).returncode == 4


def test_doctor_passes_then_names_the_fix_for_a_revoked_key(gateway: Gateway) -> None:
    created = gateway.new_key(name="doctor")
    healthy = runinfra("doctor", env=_env(gateway, created["secret"], admin=True))
    # /readyz stays 503 because broken-llm never verifies: doctor reports it and exits 1, the rest passes.
    lines = healthy.stdout.splitlines()
    assert any(line.startswith("[ok  ] API key: accepted") for line in lines)
    assert any(line.startswith("[ok  ] admin token") for line in lines)
    assert any(line.startswith("[FAIL] deployments verified") for line in lines)
    assert healthy.returncode == 1
    report = json.loads(runinfra("doctor", "--json", env=_env(gateway, created["secret"])).stdout)
    operations = next(c for c in report["checks"] if c["check"] == "verified operations")
    assert operations["ok"]
    assert "smollm2 [chat.completions, responses]" in operations["detail"]

    gateway.admin("DELETE", f"/keys/{created['id']}")
    revoked = runinfra("doctor", env=_env(gateway, created["secret"]))
    assert revoked.returncode == 1
    assert "[FAIL] API key: refused" in revoked.stdout
    assert "fix: the key is unknown or revoked" in revoked.stdout

    down = runinfra("doctor", env={"RUNINFRA_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 1
    assert "[FAIL] gateway reachable" in down.stdout
    assert "runinfra serve" in down.stdout


def test_chat_prints_tokens_as_they_arrive(gateway: Gateway, key: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RUNINFRA_")}
    process = subprocess.Popen(
        [str(BIN / "runinfra"), "chat", "smollm2", "Count from one to twenty in words.", "--max-tokens", "64",
         "--temperature", "0"],
        env={**clean, **_env(gateway, key)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    arrivals: list[float] = []
    while True:
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            break
        arrivals.append(time.monotonic())
    assert process.wait(timeout=120) == 0
    # The answer came in several writes spread over the generation, not in one block at the end.
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] > 0.05
