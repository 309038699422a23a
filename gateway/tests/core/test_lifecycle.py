"""Start, restart, crash: readiness, first-run secrets printed once, kill -9 mid-request, graceful drain."""

from __future__ import annotations

import http.client
import json
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from runinfra_gateway.testing import GatewayProcess, LlamaServer, redis_server, toml_config

from .conftest import ADMIN_TOKEN, ObservingUpstream, Response, admin, chat_config, new_tenant, request

LONG = {"model": "smollm2", "messages": [{"role": "user", "content": "Write a long story about a cat."}],
        "max_tokens": 120}


def test_ready_once_verified_and_secrets_printed_once(llama: LlamaServer, tmp_path: Path) -> None:
    config = chat_config(llama)
    config["pipelines"] = [{"id": "voice", "workspace": "main", "deployments": {
        "speech_to_text": "smollm2", "llm": "smollm2", "text_to_speech": "smollm2"}}]
    gateway = GatewayProcess(tmp_path, config=config).start()  # no RUNINFRA_ADMIN_TOKEN: one is generated
    try:
        assert request(gateway.base_url, "GET", "/readyz").status == 200
        out = gateway.stdout()
        token = re.search(r"admin token \(shown once; only its hash is stored\): (\S+)", out)
        workspace_key = re.search(r"workspace key for 'main' .*: (rik_\S+)", out)
        pipeline_key = re.search(r"pipeline key for 'voice' .*: (rik_\S+)", out)
        assert token, out
        assert workspace_key, out
        assert pipeline_key, out
        assert "verified in" in out  # progress while verifying
        assert request(gateway.v1, "GET", "/models", key=workspace_key.group(1)).status == 200
        assert request(gateway.v1, "GET", "/voice/models", key=pipeline_key.group(1)).status == 200
        assert admin(gateway, "GET", "/workspaces", token=token.group(1)).status == 200
        stored = sqlite3.connect(tmp_path / "runinfra.sqlite3").execute("SELECT value FROM gateway_meta").fetchall()
        assert token.group(1) not in str(stored)
        registered = admin(gateway, "POST", "/deployments", {
            "id": "registered", "backend": "upstream", "base_url": llama.base_url,
            "operations": ["chat.completions"], "api_key": "sk-upstream-at-rest-42"}, token=token.group(1))
        assert registered.json()["status"] == "active"
    finally:
        assert gateway.stop() == 0
    # The file changes: a second chat deployment, and the pipeline's LLM stage moves to it.
    config["deployments"].append({**config["deployments"][0], "id": "smollm2-b"})
    config["pipelines"][0]["deployments"]["llm"] = "smollm2-b"
    again = GatewayProcess(tmp_path, config=config).start()
    try:
        pipeline_models = request(again.v1, "GET", "/voice/models", key=pipeline_key.group(1)).json()["data"]
        assert {m["id"] for m in pipeline_models} == {"smollm2", "smollm2-b"}
        assert "admin token" not in again.stdout()
        assert "workspace key" not in again.stdout()
        assert admin(again, "GET", "/workspaces", token=token.group(1)).status == 200
        models = request(again.v1, "GET", "/models", key=workspace_key.group(1)).json()["data"]
        assert {m["id"] for m in models} == {"smollm2", "smollm2-b", "registered"}  # the registered one survived
        # The upstream key survived the restart sealed: the store never holds it in the clear.
        for path in tmp_path.glob("runinfra.sqlite3*"):
            assert b"sk-upstream-at-rest-42" not in path.read_bytes()
        logs = again.stderr() + gateway.stderr()
        for secret in (token.group(1), workspace_key.group(1), pipeline_key.group(1)):
            assert secret not in logs
    finally:
        again.stop()


def test_empty_deployment_list_starts_no_engine(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, config={"deployments": []}, admin_token=ADMIN_TOKEN).start()
    try:
        assert request(gateway.base_url, "GET", "/readyz").json() == {"status": "ready", "deployments": {}}
    finally:
        gateway.stop()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, config={"deployments": [{"id": "x", "backend": "upstream",
                                                                "operations": ["chat.completion"]}]})
    process = __import__("subprocess").run(gateway.command(), capture_output=True, text=True, timeout=60,
                                           check=False)
    assert process.returncode == 2
    assert "deployments[0].operations[0]" in process.stderr
    assert "Traceback" not in process.stderr


def _balance_microcents(gateway: GatewayProcess, workspace_id: str) -> tuple[int, int]:
    balance = admin(gateway, "GET", f"/workspaces/{workspace_id}/credits").json()
    return round(balance["balance_cents"] * 1_000_000), round(balance["held_cents"] * 1_000_000)


def test_kill_9_mid_request_then_restart_keeps_ledger_and_idempotency_consistent(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()  # holds "cut" calls open until released: the kill lands mid-request
    config = {"deployments": [{
        "id": "cue", "backend": "upstream", "base_url": upstream.base_url, "operations": ["chat.completions"],
        "prices": {"input_per_1k_tokens": 1, "output_per_1k_tokens": 1},
    }]}
    fast = {"model": "cue", "messages": [{"role": "user", "content": "fast one"}]}
    cut = {"model": "cue", "messages": [{"role": "user", "content": "cut by the crash"}]}
    gateway = GatewayProcess(tmp_path, config=config, admin_token=ADMIN_TOKEN).start()
    restarted: GatewayProcess | None = None
    try:
        tenant = new_tenant(gateway, credits_cents=50)
        start, _ = _balance_microcents(gateway, tenant.workspace_id)
        finished = tenant.post("/chat/completions", fast, headers={"Idempotency-Key": "done-before-crash"})
        assert finished.status == 200
        charged = int(finished.headers["x-runinfra-cost-microcents"])
        for _ in range(2):
            charged += int(tenant.post("/chat/completions", fast).headers["x-runinfra-cost-microcents"])

        outcome: list[Response | BaseException] = []

        def in_flight() -> None:
            try:
                outcome.append(tenant.post("/chat/completions", cut, headers={"Idempotency-Key": "cut-by-crash"}))
            except BaseException as exc:  # the connection dies with the gateway
                outcome.append(exc)

        thread = threading.Thread(target=in_flight)
        thread.start()
        deadline = time.monotonic() + 10
        while "cut by the crash" not in upstream.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _balance_microcents(gateway, tenant.workspace_id)[1] > 0  # its hold is taken: it is mid-request
        gateway.kill()
        thread.join(30)
        assert outcome
        assert not isinstance(outcome[0], Response)

        upstream.release()
        restarted = GatewayProcess(tmp_path, config=config, admin_token=ADMIN_TOKEN, port=gateway.port).start()
        balance, held = _balance_microcents(restarted, tenant.workspace_id)
        assert held == 0  # the orphaned hold was released
        assert balance == start - charged  # every finished request charged exactly once, the cut one not at all
        # The finished keyed request replays; the cut one was never charged, so it may run now, once.
        tenant.gateway = restarted
        replay = tenant.post("/chat/completions", fast, headers={"Idempotency-Key": "done-before-crash"})
        assert replay.status == 200
        assert replay.headers["x-runinfra-idempotent-replay"] == "true"
        assert replay.body == finished.body
        retried = tenant.post("/chat/completions", cut, headers={"Idempotency-Key": "cut-by-crash"})
        assert retried.status == 200, retried.body
        assert "x-runinfra-idempotent-replay" not in retried.headers
        cost = int(retried.headers["x-runinfra-cost-microcents"])
        assert _balance_microcents(restarted, tenant.workspace_id) == (start - charged - cost, 0)
        again = tenant.post("/chat/completions", cut, headers={"Idempotency-Key": "cut-by-crash"})
        assert again.headers["x-runinfra-idempotent-replay"] == "true"
        assert _balance_microcents(restarted, tenant.workspace_id) == (start - charged - cost, 0)
    finally:
        if restarted is not None:
            restarted.stop()
        gateway.kill()
        upstream.stop()


def test_graceful_shutdown_drains_a_stream_in_flight(llama: LlamaServer, tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, config=chat_config(llama), admin_token=ADMIN_TOKEN).start()
    tenant = new_tenant(gateway)
    body = {**LONG, "max_tokens": 40, "stream": True, "stream_options": {"include_usage": True}}
    parts = urlsplit(gateway.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                       headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    first = response.read1(65536)  # the stream is running: its first events arrived
    assert first.startswith(b"data: ")
    stopper = threading.Thread(target=gateway.stop)
    stopper.start()  # SIGTERM while the stream runs
    rest = response.read()
    stopper.join(30)
    connection.close()
    assert gateway.process is not None
    assert gateway.process.returncode == 0
    assert (first + rest).endswith(b"data: [DONE]\n\n")
    assert b'"usage"' in rest
    assert "stopped (in-flight requests drained" in gateway.stdout()
    restarted = GatewayProcess(tmp_path, config=chat_config(llama), admin_token=ADMIN_TOKEN).start()
    try:
        assert _balance_microcents(restarted, tenant.workspace_id)[1] == 0
    finally:
        restarted.stop()


def test_graceful_shutdown_closes_the_shared_rate_limit_connection(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()
    try:
        with redis_server() as redis_url:
            gateway = GatewayProcess(tmp_path, admin_token=ADMIN_TOKEN, env={"PYTHONWARNINGS": "always"}, config={
                "server": {"redis_url": redis_url},
                "deployments": [{"id": "slow", "backend": "upstream", "base_url": upstream.base_url,
                                 "operations": ["chat.completions"]}],
            }).start()
            tenant = new_tenant(gateway, requests_per_minute=100)
            answer = tenant.post("/chat/completions", {"model": "slow",
                                                       "messages": [{"role": "user", "content": "fast"}]})
            assert answer.status == 200
            assert gateway.stop() == 0
            shared = redis.Redis.from_url(redis_url)
            try:
                assert shared.keys(f"runinfra:ratelimit:*:{tenant.key_id}")  # the request was reported to Redis
            finally:
                shared.close()
        stderr = gateway.stderr()
        assert "ResourceWarning" not in stderr, stderr[-2000:]
    finally:
        upstream.stop()


def test_embedded_engines_keep_their_caches_in_the_data_dir(tmp_path: Path) -> None:
    # GatewayProcess passes --data-dir and no RUNINFRA_DATA_DIR: only the flag can lead the engine there.
    gateway = GatewayProcess(tmp_path, admin_token=ADMIN_TOKEN, config={
        "deployments": [{"id": "minilm", "backend": "embedded", "engine": "onnx_embeddings",
                         "operations": ["embeddings"]}],
    }).start()
    try:
        assert request(gateway.base_url, "GET", "/readyz").status == 200, gateway.stdout()
        stamps = json.loads((tmp_path / "weights-verified.json").read_text())  # the pinned weights' hash stamps
        assert any(path.endswith("model.onnx") for path in stamps)
    finally:
        gateway.stop()


def _reload(gateway: GatewayProcess, outcome: str, timeout: float = 60.0) -> str:
    """Send SIGHUP and wait for the next stdout line that starts with ``runinfra: <outcome>``; return it."""
    assert gateway.process is not None
    seen = len(gateway.stdout_lines)
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in gateway.stdout_lines[seen:]:
            if line.startswith(f"runinfra: {outcome}"):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no 'runinfra: {outcome}' line after SIGHUP:\n" + "\n".join(gateway.stdout_lines[seen:]))


def test_sighup_reloads_the_config_files_deployments_and_pipelines(llama: LlamaServer, tmp_path: Path) -> None:
    config = chat_config(llama)
    gateway = GatewayProcess(tmp_path, config=config, admin_token=ADMIN_TOKEN).start()
    try:
        assert gateway.config_path is not None
        tenant = new_tenant(gateway)

        def models() -> set[str]:
            return {m["id"] for m in request(gateway.v1, "GET", "/models", key=tenant.key).json()["data"]}

        assert models() == {"smollm2"}
        # A file that does not validate changes nothing, and the refusal names the key.
        gateway.config_path.write_text(
            toml_config({**config, "deployments": [{**config["deployments"][0], "operations": ["dance"]}]}),
            encoding="utf-8",
        )
        refused = _reload(gateway, "reload refused")
        assert "deployments[0].operations" in refused
        assert models() == {"smollm2"}
        # smollm2 goes, smollm2-b and a pipeline over it come: verified before they are routed.
        config["deployments"] = [{**config["deployments"][0], "id": "smollm2-b"}]
        config["pipelines"] = [{"id": "voice-b", "workspace": "main", "deployments": {
            "speech_to_text": "smollm2-b", "llm": "smollm2-b", "text_to_speech": "smollm2-b"}}]
        gateway.config_path.write_text(toml_config(config), encoding="utf-8")
        done = _reload(gateway, "reloaded")
        assert "1 deployment(s) new or changed, 1 removed; ready" in done
        assert "smollm2-b: verified in" in gateway.stdout()
        assert models() == {"smollm2-b"}
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert tenant.post("/chat/completions", {**body, "model": "smollm2-b"}).status == 200
        gone = tenant.post("/chat/completions", {**body, "model": "smollm2"})
        assert (gone.status, gone.error["code"]) == (404, "model_not_found")
        assert request(gateway.base_url, "GET", "/readyz").json() == {
            "status": "ready", "deployments": {"smollm2-b": "active"}}
        pipelines = admin(gateway, "GET", "/pipelines").json()["data"]
        assert [p["id"] for p in pipelines] == ["voice-b"]
        # The same file again: nothing is rebuilt.
        assert "0 deployment(s) new or changed, 0 removed; ready" in _reload(gateway, "reloaded")
        # Settings a reload cannot apply are named (never their values: a URL may hold a password) ...
        config["server"] = {**config["server"], "redis_url": "redis://:hunter2-secret@127.0.0.1:1/0"}
        config["limits"] = {"requests_per_minute": 5}
        gateway.config_path.write_text(toml_config(config), encoding="utf-8")
        waiting = _reload(gateway, "reload: ")  # printed after "reloaded ...: 0 deployment(s) new or changed"
        assert waiting == ("runinfra: reload: server.redis_url, limits.requests_per_minute changed in the file and "
                           "take effect on restart; still serving the values it started with"), waiting
        assert "hunter2" not in gateway.stdout() + gateway.stderr()
        # ... and are not applied: six requests in a minute still pass the limit of the running config.
        for _ in range(6):
            assert tenant.post("/chat/completions", {**body, "model": "smollm2-b"}).status == 200
    finally:
        assert gateway.stop() == 0
