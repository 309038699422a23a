"""A parsed /v1 request: the authenticated key, its pipeline scope, the body, and routing to a deployment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runinfra_gateway.auth import KeyRecord
from runinfra_gateway.pipeline_table import Pipeline
from runinfra_gateway.registry import DeploymentRuntime
from runinfra_gateway.state import GatewayState
from runinfra_gateway.v1.call import Call
from runinfra_gateway.v1.scope import resolve_deployment

__all__ = ["JsonRequest"]


@dataclass(slots=True)
class JsonRequest:
    call: Call
    key: KeyRecord
    pipeline: Pipeline | None
    body: dict[str, Any]
    raw: bytes

    def deployment(self, state: GatewayState, operation: str) -> DeploymentRuntime:
        """The deployment the body's ``model`` names, for ``operation`` (recorded on the call)."""
        self.call.operation = operation
        runtime = resolve_deployment(state, self.key, self.pipeline, self.body.get("model"), operation)
        self.call.deployment_id = runtime.id
        return runtime
