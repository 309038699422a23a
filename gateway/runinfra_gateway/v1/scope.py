"""Routing a request to a deployment: key scope, pipeline ownership, model, operation.

Everything a key may not see answers exactly like something that does not
exist (404 ``model_not_found``), so ids of other workspaces' pipelines and
unverified deployments leak nothing.
"""

from __future__ import annotations

from typing import Any

from runinfra_gateway import errors
from runinfra_gateway.auth import KeyRecord
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.state import GatewayState

__all__ = ["deployments_in_scope", "pipeline_in_scope", "resolve_deployment"]


def _pipeline_not_found() -> errors.GatewayError:
    return errors.GatewayError(
        404, "model_not_found", "No such pipeline for this key.", code="model_not_found", param="pipeline_id"
    )


def pipeline_in_scope(state: GatewayState, key: KeyRecord, pipeline_id: str | None) -> Pipeline | None:
    """The pipeline a request is scoped to (``None`` at the root), checked against the key."""
    if key.scope == "pipeline" and pipeline_id != key.pipeline_id:
        raise errors.permission_denied(
            f"This key is scoped to pipeline {key.pipeline_id!r}; call /v1/{key.pipeline_id}/... with it.",
            type="pipeline_scope_violation",
        )
    if pipeline_id is None:
        return None
    pipeline = state.pipelines.get(pipeline_id)
    if pipeline is None or pipeline.workspace_id != key.workspace_id:
        raise _pipeline_not_found()
    return pipeline


def resolve_deployment(
    state: GatewayState, key: KeyRecord, pipeline: Pipeline | None, model: Any, operation: str
) -> DeploymentRuntime:
    """The active deployment ``model`` names, if this key may use it for ``operation``."""
    if model is None:
        raise errors.invalid_request("'model' is required.", code="missing_field", param="model")
    if not isinstance(model, str) or not model.strip():
        raise errors.invalid_request("'model' must be a non-empty string.", code="invalid_value", param="model")
    if pipeline is not None and model not in pipeline.deployment_ids:
        raise errors.model_not_found(model[:200])
    runtime = state.registry.active(model)
    if runtime is None or not runtime.visible_to(key.workspace_id):
        raise errors.model_not_found(model[:200])
    if operation not in runtime.operations:
        raise errors.unsupported_operation(operation, runtime.id, runtime.operations)
    return runtime


def deployments_in_scope(state: GatewayState, key: KeyRecord, pipeline: Pipeline | None) -> list[DeploymentRuntime]:
    """What ``/models`` lists for this key (and pipeline)."""
    if pipeline is None:
        return state.registry.visible(key.workspace_id)
    found = (state.registry.active(deployment_id) for deployment_id in pipeline.deployment_ids)
    seen: dict[str, DeploymentRuntime] = {}
    for runtime in found:
        if runtime is not None and runtime.visible_to(key.workspace_id):
            seen.setdefault(runtime.id, runtime)
    return list(seen.values())
