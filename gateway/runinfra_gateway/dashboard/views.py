"""What the dashboard pages show, as plain values: the templates read these and nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "DayPoint",
    "DeploymentView",
    "KeyView",
    "PipelineView",
    "RequestView",
    "WorkspaceView",
]


@dataclass(frozen=True)
class WorkspaceView:
    id: str
    name: str


@dataclass(frozen=True)
class KeyView:
    id: str
    name: str
    prefix: str
    scope: str
    pipeline_id: str | None
    created: str
    last_used: str | None
    revoked: bool


@dataclass(frozen=True)
class DeploymentView:
    id: str
    backend: str
    status: str  # pending | verifying | active | failed
    last_error: str | None
    failed_probes: tuple[tuple[str, str], ...]  # (operation, the probe's message)
    declared_operations: tuple[str, ...]
    verified_operations: tuple[str, ...]
    voices: tuple[str, ...]
    price_lines: tuple[str, ...]
    workspace_id: str | None
    latency_ms: tuple[float, ...] = ()
    error_rate: tuple[float, ...] = ()
    requests: int = 0
    mean_latency_ms: float | None = None

    @property
    def status_label(self) -> str:
        return {"active": "verified · active", "failed": "failed", "verifying": "verifying"}.get(self.status, "pending")

    @property
    def badge(self) -> str:
        return {"active": "ok", "failed": "bad"}.get(self.status, "warn")


@dataclass(frozen=True)
class PipelineView:
    id: str
    workspace_id: str
    stages: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestView:
    request_id: str
    created: str
    deployment_id: str | None
    operation: str | None
    status: int
    error_type: str | None
    latency_ms: float
    cost_cents: float
    key_id: str | None


@dataclass(frozen=True)
class DayPoint:
    day: str  # YYYY-MM-DD (UTC)
    requests: int
    errors: int
    spend_cents: float
