"""Key scopes: workspace keys reach verified deployments by model; pipeline keys only their pipeline."""

from __future__ import annotations

from runinfra_gateway.testing import GatewayProcess, LlamaServer

from .conftest import Tenant, admin, new_tenant, request


def _pipeline(gateway: GatewayProcess, tenant: Tenant, pipeline_id: str) -> str:
    created = admin(gateway, "POST", "/pipelines", {
        "id": pipeline_id, "workspace_id": tenant.workspace_id,
        "deployments": {"speech_to_text": "smollm2", "llm": "smollm2", "text_to_speech": "smollm2"},
    })
    assert created.status == 201, created.body
    assert created.json()["workspace_id"] == tenant.workspace_id
    key = admin(gateway, "POST", "/keys", {"scope": "pipeline", "pipeline_id": pipeline_id})
    assert key.status == 201, key.body
    assert key.json()["workspace_id"] == tenant.workspace_id
    secret: str = key.json()["secret"]
    return secret


CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_pipeline_key_reaches_only_its_pipeline(gateway: GatewayProcess, tenant: Tenant, llama: LlamaServer) -> None:
    pipe_key = _pipeline(gateway, tenant, "scopes-a")
    _pipeline(gateway, tenant, "scopes-b")
    # Another verified deployment exists, outside the pipeline.
    other = admin(gateway, "POST", "/deployments", {
        "id": "smollm2-outside", "backend": "upstream", "base_url": llama.base_url, "operations": ["chat.completions"],
    })
    assert other.status == 201, other.body
    assert other.json()["status"] == "active"

    inside = request(gateway.v1, "POST", "/scopes-a/chat/completions", body=CHAT, key=pipe_key)
    assert inside.status == 200, inside.body
    models = request(gateway.v1, "GET", "/scopes-a/models", key=pipe_key).json()["data"]
    assert [m["id"] for m in models] == ["smollm2"]

    root = request(gateway.v1, "POST", "/chat/completions", body=CHAT, key=pipe_key)
    assert root.status == 403
    assert root.error["type"] == "pipeline_scope_violation"
    sibling = request(gateway.v1, "GET", "/scopes-b/models", key=pipe_key)
    assert sibling.status == 403
    assert sibling.error["type"] == "pipeline_scope_violation"
    outside = request(gateway.v1, "POST", "/scopes-a/chat/completions",
                      body={**CHAT, "model": "smollm2-outside"}, key=pipe_key)
    assert outside.status == 404
    assert outside.error["type"] == "model_not_found"
    # The workspace key sees the outside deployment at the root.
    assert {m["id"] for m in tenant.get("/models").json()["data"]} >= {"smollm2", "smollm2-outside"}


def test_other_workspaces_pipelines_do_not_exist(gateway: GatewayProcess, tenant: Tenant) -> None:
    _pipeline(gateway, tenant, "scopes-private")
    stranger = new_tenant(gateway)
    foreign = stranger.post("/scopes-private/chat/completions", CHAT)
    missing = stranger.post("/scopes-nowhere/chat/completions", CHAT)
    assert foreign.status == missing.status == 404
    assert foreign.error == missing.error  # identical: existence is not revealed
    own = tenant.post("/scopes-private/chat/completions", CHAT)
    assert own.status == 200, own.body


def test_missing_unknown_and_revoked_keys_are_401(gateway: GatewayProcess, tenant: Tenant) -> None:
    assert request(gateway.v1, "GET", "/models").error["type"] == "auth_error"
    assert request(gateway.v1, "GET", "/models", key="rik_" + "A" * 43).status == 401
    assert request(gateway.v1, "GET", "/models", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status == 401
    assert tenant.get("/models").status == 200
    revoked = admin(gateway, "DELETE", f"/keys/{tenant.key_id}")
    assert revoked.status == 200
    assert revoked.json()["revoked"] is True
    after = tenant.get("/models")
    assert after.status == 401
    assert after.error["type"] == "auth_error"
    assert tenant.key not in after.body.decode()


def test_keys_are_listed_without_secrets(gateway: GatewayProcess, tenant: Tenant) -> None:
    listing = admin(gateway, "GET", f"/keys?workspace_id={tenant.workspace_id}")
    assert listing.status == 200
    (key,) = listing.json()["data"]
    assert "secret" not in key
    assert tenant.key not in listing.body.decode()
    assert tenant.key.startswith(key["prefix"])
    assert len(key["prefix"]) < len(tenant.key) // 2
