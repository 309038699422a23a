"""Logging: request lines and retry decisions through ``logging``, never the key."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from runinfra import RunInfra
from sdk_servers import API_KEY, ScriptedServer, error_handler, json_handler


def test_request_and_retry_lines_are_logged_without_the_key(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="runinfra")
    busy = error_handler(503, {"message": f"busy {API_KEY}", "type": "deployment_error"})
    server.on("GET", "/v1/models", busy, json_handler({"data": []}, request_id="req_ok"))
    client = RunInfra(api_key=API_KEY, base_url=server.url, retry_base_seconds=0)
    client.models.list()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /v1/models -> 503" in text
    assert "GET /v1/models -> 200" in text
    assert "req_ok" in text
    assert "retrying GET /v1/models after status 503" in text
    assert API_KEY not in text


def test_runinfra_log_env_enables_stderr_logging(server: ScriptedServer, tmp_path: Path) -> None:
    server.on("GET", "/v1/models", json_handler({"data": []}, request_id="req_env"))
    script = (
        "from runinfra import RunInfra\n"
        f"RunInfra(api_key={API_KEY!r}, base_url={server.url!r}).models.list()\n"
    )
    sdk_root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"RUNINFRA_LOG": "info", "PYTHONPATH": sdk_root, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "GET /v1/models -> 200" in result.stderr
    assert "req_env" in result.stderr
    assert API_KEY not in result.stderr
    quiet = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": sdk_root, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert quiet.stderr == ""


def test_server_text_in_log_lines_is_made_inert(server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> None:
    # x-request-id is the server's text: an ANSI escape in it must not drive the terminal where the
    # SDK's log lines are read.
    caplog.set_level(logging.DEBUG, logger="runinfra")
    server.on("GET", "/v1/models", json_handler({"data": []}, request_id="req\x1b[2J\x1b]0;owned\x07"))
    RunInfra(api_key=API_KEY, base_url=server.url).models.list()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "request_id=req\\x1b[2J\\x1b]0;owned\\x07" in text
    assert "\x1b" not in text
