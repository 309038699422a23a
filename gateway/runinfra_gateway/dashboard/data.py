"""The dashboard's only door into the gateway: reads and actions over ``GatewayState``.

Actions (create or revoke a key, top up, verify a deployment) go through the
core's admin service, so the dashboard, the admin API and the CLI change state
the same way (key cache, ledger, webhook events). Read-only aggregates the
admin API does not offer (per-day usage, sparkline series, a key's last use)
are queried here from the core's request log, off the event loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, case, cast, func, select
from sqlalchemy.orm import Session

from runinfra_gateway import errors
from runinfra_gateway.admin import service
from runinfra_gateway.dashboard.views import (
    DayPoint,
    DeploymentView,
    KeyView,
    PipelineView,
    RequestView,
    WorkspaceView,
)
from runinfra_gateway.state import GatewayState
from runinfra_gateway.store.models import RequestLog

__all__ = [
    "METRICS_BUCKET_LABEL",
    "METRICS_WINDOW_LABEL",
    "DayPoint",
    "RequestView",
    "adjust_credits",
    "admin_token_matches",
    "balance",
    "create_key",
    "get_deployment",
    "latest_requests",
    "list_deployments",
    "list_keys",
    "list_pipelines",
    "list_workspaces",
    "public_base_url",
    "revoke_key",
    "usage_per_day",
    "verify_deployment",
]

MICROCENTS_PER_CENT = 1_000_000
METRICS_WINDOW = timedelta(hours=24)
METRICS_BUCKETS = 24
METRICS_WINDOW_LABEL = "24 hours"
METRICS_BUCKET_LABEL = "hourly"

_PRICE_LABELS: dict[str, str] = {
    "input_per_1k_tokens": "¢ / 1k input tokens",
    "output_per_1k_tokens": "¢ / 1k output tokens",
    "per_image": "¢ / image",
    "per_audio_second": "¢ / audio second",
    "per_1k_characters": "¢ / 1k characters",
}


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


# -- identity and settings ----------------------------------------------------------------


def admin_token_matches(state: GatewayState, token: str) -> bool:
    return bool(state.admin_token.matches(token))


def public_base_url(state: GatewayState) -> str | None:
    """The operator-configured external origin, if any (else the dashboard uses the request's)."""
    value = state.settings.public_base_url
    return str(value) if value else None


# -- workspaces, pipelines, keys ------------------------------------------------------------


async def list_workspaces(state: GatewayState) -> list[WorkspaceView]:
    rows = await service.list_workspaces(state)
    return [WorkspaceView(id=str(r["id"]), name=str(r.get("name") or r["id"])) for r in rows]


async def list_pipelines(state: GatewayState, workspace_id: str | None) -> list[PipelineView]:
    rows = await service.list_pipelines(state)
    return [
        PipelineView(id=str(r["id"]), workspace_id=str(r["workspace_id"]), stages=_stages(r["deployments"]))
        for r in rows
        if workspace_id is None or r["workspace_id"] == workspace_id
    ]


def _stages(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


async def list_keys(state: GatewayState, workspace_id: str) -> list[KeyView]:
    rows = [r for r in await service.list_keys(state, workspace_id) if not r.get("revoked")]
    await state.request_log.flush()
    ids = [str(r["id"]) for r in rows]

    def last_used(session: Session) -> dict[str, float]:
        if not ids:
            return {}
        query = (
            select(RequestLog.key_id, func.max(RequestLog.created_at))
            .where(RequestLog.key_id.in_(ids))
            .group_by(RequestLog.key_id)
        )
        return {str(key_id): created for key_id, created in session.execute(query) if created is not None}

    used = await state.db.run(last_used)
    return [
        KeyView(
            id=str(r["id"]),
            name=str(r.get("name") or ""),
            prefix=str(r["prefix"]),
            scope=str(r["scope"]),
            pipeline_id=r.get("pipeline_id"),
            created=_when(_parse_time(r.get("created"))) or "",
            last_used=_when(_parse_time(used.get(str(r["id"])))),
            revoked=bool(r.get("revoked")),
        )
        for r in rows
    ]


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


async def create_key(
    state: GatewayState, *, scope: str, workspace_id: str, pipeline_id: str | None, name: str
) -> dict[str, str]:
    """Create a key; the returned mapping holds the secret (the only time it exists in clear)."""
    payload: dict[str, Any] = {"scope": scope}
    if name:
        payload["name"] = name
    if workspace_id:
        payload["workspace_id"] = workspace_id
    if pipeline_id:
        payload["pipeline_id"] = pipeline_id
    created = await service.create_key(state, payload)
    return {
        "id": str(created["id"]),
        "secret": str(created["secret"]),
        "prefix": str(created["prefix"]),
        "scope": str(created["scope"]),
        "pipeline_id": str(created.get("pipeline_id") or ""),
        "name": str(created.get("name") or ""),
    }


async def revoke_key(state: GatewayState, key_id: str) -> str:
    """Revoke; returns the key's display prefix."""
    if not key_id:
        raise errors.invalid_request("Choose a key to revoke.", code="missing_field", param="key_id")
    revoked = await service.revoke_key(state, key_id)
    return str(revoked["prefix"])


# -- credits and usage ----------------------------------------------------------------------


async def balance(state: GatewayState, workspace_id: str) -> tuple[float, float]:
    result = await service.get_credits(state, workspace_id)
    return float(result["balance_cents"]), float(result["held_cents"])


async def adjust_credits(state: GatewayState, workspace_id: str, cents: float) -> float:
    result = await service.adjust_credits(state, workspace_id, {"cents": cents})
    return float(result["balance_cents"])


def _epoch_bucket(session: Session, seconds: int) -> Any:
    """``created_at`` as whole periods of ``seconds`` since the epoch, computed by SQLite or PostgreSQL."""
    epoch: ColumnElement[Any] = RequestLog.created_at.expression
    if session.get_bind().dialect.name != "sqlite":
        # PostgreSQL's CAST rounds: 23:59:59.7 would count for the next day. SQLite's truncates, which
        # for times after 1970 is the floor (its FLOOR needs a build with the math functions).
        epoch = func.floor(epoch)
    return cast(epoch, BigInteger) // seconds


async def usage_per_day(state: GatewayState, workspace_id: str, days: int) -> list[DayPoint]:
    """Requests, failures and spend per UTC day, aggregated in SQL (a busy day is one row, not a million)."""
    today = datetime.now(timezone.utc).date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=timezone.utc)
    await state.request_log.flush()

    def query(session: Session) -> dict[str, tuple[int, int, int]]:
        day = _epoch_bucket(session, 86_400).label("day")
        statement = (
            select(
                day,
                func.count(),
                func.sum(case((RequestLog.status >= 400, 1), else_=0)),
                func.sum(RequestLog.cost_microcents),
            )
            .where(RequestLog.workspace_id == workspace_id, RequestLog.created_at >= start.timestamp())
            .group_by(day)
        )
        return {
            datetime.fromtimestamp(int(number) * 86_400, tz=timezone.utc).date().isoformat(): (
                int(requests), int(failures or 0), int(microcents or 0)
            )
            for number, requests, failures, microcents in session.execute(statement)
        }

    totals = await state.db.run(query)
    points = []
    for offset in range(days):
        day = (today - timedelta(days=days - 1 - offset)).isoformat()
        requests, failures, microcents = totals.get(day, (0, 0, 0))
        points.append(DayPoint(day, requests, failures, microcents / MICROCENTS_PER_CENT))
    return points


async def latest_requests(state: GatewayState, workspace_id: str, limit: int) -> list[RequestView]:
    rows = await service.recent_requests(state, workspace_id=workspace_id, limit=limit)
    return [
        RequestView(
            request_id=str(row["request_id"]),
            created=_when(_parse_time(row.get("created"))) or "",
            deployment_id=row.get("deployment_id"),
            operation=row.get("operation"),
            status=int(row["status"]),
            error_type=row.get("error_type"),
            latency_ms=float(row.get("latency_ms") or 0.0),
            cost_cents=int(row.get("cost_microcents") or 0) / MICROCENTS_PER_CENT,
            key_id=row.get("key_id"),
        )
        for row in rows
    ]


# -- deployments ----------------------------------------------------------------------------


def _price_lines(table: Mapping[str, Any]) -> tuple[str, ...]:
    prices = table.get("prices") or {}
    lines = []
    for key, label in _PRICE_LABELS.items():
        value = prices.get(key) if isinstance(prices, Mapping) else None
        if isinstance(value, (int, float)) and value:
            lines.append(f"{value:g}{label}")
    return tuple(lines)


def _failed_probes(probes: Any) -> tuple[tuple[str, str], ...]:
    return tuple(
        (str(probe.get("operation") or ""), str(probe.get("message") or "failed"))
        for probe in probes or ()
        if isinstance(probe, Mapping) and probe.get("ok") is False
    )


_Series = tuple[list[float], list[float], int, float | None]


async def _metrics(state: GatewayState, workspace_id: str | None) -> dict[str, _Series]:
    """Per deployment, over the last 24 hours: hourly mean latency, hourly 5xx rate, requests, mean latency."""
    bucket_seconds = int(METRICS_WINDOW.total_seconds()) // METRICS_BUCKETS
    now = int(datetime.now(timezone.utc).timestamp())
    first = now // bucket_seconds - METRICS_BUCKETS + 1
    start = first * bucket_seconds
    await state.request_log.flush()

    def query(session: Session) -> list[tuple[str, int, int, int, float]]:
        bucket = _epoch_bucket(session, bucket_seconds).label("bucket")
        statement = (
            select(
                RequestLog.deployment_id,
                bucket,
                func.count(),
                func.sum(case((RequestLog.status >= 500, 1), else_=0)),
                func.sum(RequestLog.latency_ms),
            )
            .where(RequestLog.created_at >= start, RequestLog.deployment_id.is_not(None))
            .group_by(RequestLog.deployment_id, bucket)
        )
        if workspace_id is not None:
            statement = statement.where(RequestLog.workspace_id == workspace_id)
        rows = session.execute(statement)
        return [(str(d), int(b), int(n), int(f or 0), float(lat or 0.0)) for d, b, n, f, lat in rows]

    counts: dict[str, list[int]] = defaultdict(lambda: [0] * METRICS_BUCKETS)
    failures: dict[str, list[int]] = defaultdict(lambda: [0] * METRICS_BUCKETS)
    latency_sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * METRICS_BUCKETS)
    for deployment_id, number, requests, failed, latency_sum in await state.db.run(query):
        index = min(METRICS_BUCKETS - 1, max(0, number - first))
        counts[deployment_id][index] += requests
        failures[deployment_id][index] += failed
        latency_sums[deployment_id][index] += latency_sum
    result: dict[str, _Series] = {}
    for deployment_id, per_bucket in counts.items():
        total = sum(per_bucket)
        sums = latency_sums[deployment_id]
        result[deployment_id] = (
            [sums[i] / n if n else 0.0 for i, n in enumerate(per_bucket)],
            [failures[deployment_id][i] / n if n else 0.0 for i, n in enumerate(per_bucket)],
            total,
            sum(sums) / total if total else None,
        )
    return result


async def list_deployments(state: GatewayState, workspace_id: str | None) -> list[DeploymentView]:
    metrics = await _metrics(state, workspace_id)
    views = []
    for runtime in sorted(state.registry.all(), key=lambda r: r.id):
        if workspace_id is not None and not runtime.visible_to(workspace_id):
            continue
        latency, error_rate, count, mean_latency = metrics.get(runtime.id, ([], [], 0, None))
        views.append(
            DeploymentView(
                id=runtime.id,
                backend=runtime.config.backend,
                status=runtime.status,
                last_error=runtime.last_error,
                failed_probes=_failed_probes(runtime.probes),
                declared_operations=tuple(runtime.declared_operations),
                verified_operations=tuple(runtime.operations),
                voices=tuple(runtime.voices),
                price_lines=_price_lines(runtime.config.table),
                workspace_id=runtime.workspace_id,
                latency_ms=tuple(latency) if count else (),
                error_rate=tuple(error_rate) if count else (),
                requests=count,
                mean_latency_ms=mean_latency,
            )
        )
    return views


async def get_deployment(state: GatewayState, deployment_id: str, workspace_id: str | None) -> DeploymentView | None:
    return next((d for d in await list_deployments(state, workspace_id) if d.id == deployment_id), None)


async def verify_deployment(state: GatewayState, deployment_id: str) -> tuple[str, str | None]:
    """Re-run the deployment's probes; returns its status and, on failure, the message."""
    result = await service.verify_deployment(state, deployment_id)
    return str(result["status"]), result.get("last_error")
