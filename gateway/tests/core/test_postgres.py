"""The same store code on PostgreSQL: ``RUNINFRA_DATABASE_URL`` pointing at a throwaway real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from runinfra_gateway.testing import GatewayProcess, LlamaServer, create_database, postgres_server

from .conftest import ADMIN_TOKEN, admin, chat_config, new_tenant, request

CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "Say yes"}], "max_tokens": 3}


@pytest.mark.slow
def test_core_store_on_postgresql(llama: LlamaServer, postgres_url: str, tmp_path: Path) -> None:
    url = create_database(postgres_url, "runinfra_core")
    env = {"RUNINFRA_DATABASE_URL": url}
    config = chat_config(llama)
    config["pipelines"] = [{"id": "pg-pipe", "workspace": "main", "deployments": {
        "speech_to_text": "smollm2", "llm": "smollm2", "text_to_speech": "smollm2"}}]
    gateway = GatewayProcess(tmp_path, config=config, admin_token=ADMIN_TOKEN, env=env).start()
    try:
        assert not (tmp_path / "runinfra.sqlite3").exists()
        tenant = new_tenant(gateway, credits_cents=5)
        done = tenant.post("/chat/completions", CHAT, headers={"X-Client-Request-Id": "pg-1"})
        assert done.status == 200, done.body
        cost = int(done.headers["x-runinfra-cost-microcents"])
        revoked_key = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": tenant.workspace_id})
        assert admin(gateway, "DELETE", f"/keys/{revoked_key.json()['id']}").status == 200
        pipe_key = admin(gateway, "POST", "/keys", {"scope": "pipeline", "pipeline_id": "pg-pipe"}).json()
        widest = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": tenant.workspace_id,
                                                  "requests_per_minute": 2**31 - 1, "tokens_per_minute": 2**31 - 1})
        assert widest.status == 201, widest.body  # the largest limit the admin API takes fits the column
        rows = admin(gateway, "GET", f"/requests?workspace_id={tenant.workspace_id}").json()["data"]
        assert [row["client_request_id"] for row in rows] == ["pg-1"]
    finally:
        gateway.stop()

    restarted = GatewayProcess(tmp_path, config=config, admin_token=ADMIN_TOKEN, env=env).start()
    try:
        tenant.gateway = restarted
        assert tenant.get("/models").status == 200
        assert request(restarted.v1, "GET", "/models", key=revoked_key.json()["secret"]).status == 401
        assert request(restarted.v1, "GET", "/pg-pipe/models", key=pipe_key["secret"]).status == 200
        balance = tenant.balance()
        assert round(balance["balance_cents"] * 1_000_000) == 5_000_000 - cost
        assert balance["held_cents"] == 0
    finally:
        restarted.stop()


@pytest.mark.slow
def test_admin_calls_while_the_database_is_gone_get_a_json_500(tmp_path: Path) -> None:
    with postgres_server() as server:  # a server of its own: this test stops it under a running gateway
        url = create_database(server, "runinfra_lost")
        gateway = GatewayProcess(tmp_path, config={"deployments": []}, admin_token=ADMIN_TOKEN,
                                 env={"RUNINFRA_DATABASE_URL": url}).start()
    try:
        lost = admin(gateway, "POST", "/workspaces", {"name": "after the database went away"})
        assert lost.status == 500, lost.body
        assert (lost.error["type"], lost.error["code"]) == ("deployment_error", "internal_error")
        assert lost.error["message"] == "Internal gateway error."
        assert lost.headers["x-request-id"].startswith("req_")
        assert request(gateway.base_url, "GET", "/healthz").status == 200  # the process lives on
        # A key the gateway has not seen is looked up in the database: that fails too, and the log line
        # naming the request keeps the client's path to one line (a %0a decodes to a line break).
        unknown = "rik_" + "a" * 40
        failed = request(gateway.v1, "GET", "/models/x%0aINFO%20forged%20by%20the%20client%1b[2J", key=unknown)
        assert failed.status == 500, failed.body
        assert failed.error["code"] == "internal_error"
        log = gateway.stderr()
        assert "unhandled error in GET /v1/models/x?INFO forged by the client?[2J" in log, log
        assert "\nINFO forged" not in log
        assert "\x1b" not in log
    finally:
        gateway.stop()
