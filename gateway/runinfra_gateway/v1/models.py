"""GET /models and GET /models/{id}: the verified deployments this key (and pipeline) may call."""

from __future__ import annotations

from runinfra_gateway import errors
from runinfra_gateway.auth import KeyRecord
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.scope import deployments_in_scope

__all__ = ["list_models", "retrieve_model"]


async def list_models(state: GatewayState, call: Call, key: KeyRecord, pipeline: Pipeline | None) -> None:
    call.operation = "models.list"
    data = [runtime.model_object() for runtime in deployments_in_scope(state, key, pipeline)]
    data.sort(key=lambda entry: entry["id"])
    await call.respond_json(200, {"object": "list", "data": data})


async def retrieve_model(
    state: GatewayState, call: Call, key: KeyRecord, pipeline: Pipeline | None, model_id: str
) -> None:
    call.operation = "models.retrieve"
    for runtime in deployments_in_scope(state, key, pipeline):
        if runtime.id == model_id:
            await call.respond_json(200, runtime.model_object())
            return
    raise errors.model_not_found(model_id[:200])
