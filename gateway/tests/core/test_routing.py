"""Routing: model → verified deployment, operations and parameters refused by name, hostile pipeline ids."""

from __future__ import annotations

import pytest
from runinfra_gateway.testing import GatewayProcess, LlamaServer

from .conftest import Tenant, admin

CHAT = "/chat/completions"


def _chat(model: str = "smollm2", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2, **extra}


def test_models_lists_only_verified_deployments_with_operations(tenant: Tenant) -> None:
    listing = tenant.get("/models")
    assert listing.status == 200
    payload = listing.json()
    assert payload["object"] == "list"
    ids = [m["id"] for m in payload["data"]]
    assert "smollm2" in ids
    assert "dead-upstream" not in ids  # it failed verification
    model = payload["data"][ids.index("smollm2")]
    assert model["object"] == "model"
    assert model["operations"] == ["chat.completions", "responses"]
    assert isinstance(model["created"], int)
    assert model["owned_by"]
    one = tenant.get("/models/smollm2")
    assert one.status == 200
    assert one.json() == model


def test_unknown_and_unverified_models_are_404(tenant: Tenant) -> None:
    for name in ("no-such-model", "dead-upstream"):
        response = tenant.post(CHAT, _chat(name))
        assert response.status == 404
        assert response.error["type"] == "model_not_found"
        assert response.error["param"] == "model"
        assert tenant.get(f"/models/{name}").status == 404


def test_missing_model_is_400(tenant: Tenant) -> None:
    response = tenant.post(CHAT, {"messages": [{"role": "user", "content": "x"}]})
    assert response.status == 400
    assert response.error["code"] == "missing_field"
    assert response.error["param"] == "model"


def test_operation_the_deployment_lacks_is_a_typed_400_not_a_fallback(tenant: Tenant) -> None:
    response = tenant.post("/embeddings", {"model": "smollm2", "input": "hello"})
    assert response.status == 400
    assert response.error["code"] == "unsupported_operation"
    assert "chat.completions" in response.error["message"]
    assert "x-runinfra-cost-microcents" not in response.headers


@pytest.mark.parametrize("param", ["logprobs", "n", "tools", "frequency_penalty", "surprise"])
def test_unsupported_parameter_is_named(tenant: Tenant, param: str) -> None:
    response = tenant.post(CHAT, _chat(**{param: 1}))
    assert response.status == 400
    assert response.error["code"] == "unsupported_parameter"
    assert response.error["param"] == param


def test_responses_state_fields_are_refused_by_name(tenant: Tenant) -> None:
    response = tenant.post("/responses", {"model": "smollm2", "input": "hi", "previous_response_id": "resp_1"})
    assert response.status == 400
    assert response.error["param"] == "previous_response_id"


@pytest.mark.parametrize(
    "path",
    [
        "/%2e%2e/chat/completions",
        "/..%2F..%2Fadmin/chat/completions",
        "/a%2Fb/chat/completions",
        "/pipe%00line/chat/completions",
        "/%F0%9F%98%80/chat/completions",
        "/" + "p" * 65 + "/chat/completions",
    ],
)
def test_weird_pipeline_ids_are_refused(tenant: Tenant, path: str) -> None:
    response = tenant.post(path, _chat())
    assert response.status == 400
    assert response.error["param"] == "pipeline_id"


def test_traversal_out_of_v1_is_not_routed(tenant: Tenant) -> None:
    response = tenant.get("/../admin/v1/keys")
    assert response.status == 404
    assert response.error["type"] == "not_found_error"


def test_model_ids_with_a_slash_are_retrievable_url_encoded(gateway: GatewayProcess, tenant: Tenant,
                                                            llama: LlamaServer) -> None:
    created = admin(gateway, "POST", "/deployments", {
        "id": "org/small-chat", "backend": "upstream", "base_url": llama.base_url,
        "operations": ["chat.completions"]})
    assert created.json()["status"] == "active", created.body
    assert tenant.get("/models/org%2Fsmall-chat").json()["id"] == "org/small-chat"
    chat = tenant.post(CHAT, _chat("org/small-chat"))
    assert chat.status == 200
    assert chat.json()["model"] == "org/small-chat"
