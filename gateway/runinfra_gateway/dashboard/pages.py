"""The dashboard's pages and form actions; each runs behind the session guard.

Handlers read through :mod:`runinfra_gateway.dashboard.data` (which calls the
core's admin service) and render templates. Every form action answers with a
303 redirect (post/redirect/get), so a reload never re-submits; a new key's
secret travels to the next page inside the server-side session and is popped
the first time it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runinfra_gateway import errors
from runinfra_gateway.dashboard import data
from runinfra_gateway.dashboard.auth import DashboardAuth, form_text, read_form
from runinfra_gateway.dashboard.charts import bar_chart, sparkline
from runinfra_gateway.dashboard.render import prefix_of, render
from runinfra_gateway.dashboard.sessions import IDLE_TIMEOUT_SECONDS, Session
from runinfra_gateway.dashboard.snippets import snippets_for
from runinfra_gateway.dashboard.views import WorkspaceView
from runinfra_gateway.dashboard.webhooks_page import webhook_service
from runinfra_gateway.state import GatewayState

__all__ = ["Pages"]

USAGE_DAYS = 14


def _redirect(request: Request, path: str) -> RedirectResponse:
    return RedirectResponse(f"{prefix_of(request)}{path}", status_code=303)


def _origin(request: Request, state: GatewayState) -> str:
    configured = data.public_base_url(state)
    if configured:
        return configured.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}"


class Pages:
    def __init__(self, state: GatewayState, auth: DashboardAuth) -> None:
        self.state = state
        self.auth = auth

    # -- shared context -----------------------------------------------------------------

    async def _workspace(self, session: Session) -> tuple[list[WorkspaceView], WorkspaceView | None]:
        workspaces = await data.list_workspaces(self.state)
        chosen = next((w for w in workspaces if w.id == session.workspace_id), None)
        if chosen is None and workspaces:
            chosen = workspaces[0]
            session.workspace_id = chosen.id
        return workspaces, chosen

    async def context(self, session: Session, title: str, section: str) -> dict[str, Any]:
        workspaces, chosen = await self._workspace(session)
        return {
            "title": title,
            "section": section,
            "workspaces": workspaces,
            "workspace_id": chosen.id if chosen else None,
            "workspace_name": chosen.name if chosen else "—",
            "webhooks_available": webhook_service(self.state) is not None,
        }

    # -- navigation ---------------------------------------------------------------------

    async def home(self, request: Request, session: Session) -> Response:
        return _redirect(request, "/deployments")

    async def switch_workspace(self, request: Request, session: Session) -> Response:
        form = await read_form(request)
        wanted = form_text(form, "workspace_id")
        if any(w.id == wanted for w in await data.list_workspaces(self.state)):
            session.workspace_id = wanted
        target = form_text(form, "next")
        prefix = prefix_of(request)
        # Only a path inside the dashboard: the field must never become an open redirect.
        if not target.startswith(f"{prefix}/") or "//" in target or "\\" in target:
            target = f"{prefix}/"
        return RedirectResponse(target, status_code=303)

    async def session_page(self, request: Request, session: Session) -> Response:
        context = await self.context(session, "Session", "session")
        context.update(
            session_count=len(self.auth.sessions),
            idle_hours=int(IDLE_TIMEOUT_SECONDS // 3600),
            secure_cookie=request.url.scheme == "https",
        )
        return render(request, "session.html", context, session=session)

    # -- API keys -----------------------------------------------------------------------

    async def keys_page(self, request: Request, session: Session) -> Response:
        context = await self.context(session, "API Keys", "keys")
        workspace_id = context["workspace_id"]
        context["keys"] = await data.list_keys(self.state, workspace_id) if workspace_id else []
        context["pipelines"] = await data.list_pipelines(self.state, workspace_id) if workspace_id else []
        context["new_key"] = session.pop_pending_secret()
        return render(request, "keys.html", context, session=session)

    async def create_key(self, request: Request, session: Session) -> Response:
        form = await read_form(request)
        scope = form_text(form, "scope") or "workspace"
        workspace_id = form_text(form, "workspace_id") or session.workspace_id or ""
        pipeline_id = form_text(form, "pipeline_id") or None
        name = form_text(form, "name")[:200]
        back = "/settings/api-keys"
        if form_text(form, "return_to") == "pipeline" and pipeline_id:
            back = f"/pipelines/{quote(pipeline_id, safe='')}/deploy"
        if scope not in ("workspace", "pipeline"):
            session.flash.append(("error", "Scope must be Workspace or Pipeline."))
            return _redirect(request, back)
        try:
            created = await data.create_key(
                self.state,
                scope=scope,
                workspace_id=workspace_id,
                pipeline_id=pipeline_id if scope == "pipeline" else None,
                name=name,
            )
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
            return _redirect(request, back)
        session.pending_secret = created
        return _redirect(request, f"{back}#new-key")

    async def revoke_key(self, request: Request, session: Session) -> Response:
        form = await read_form(request)
        key_id = form_text(form, "key_id")
        try:
            prefix = await data.revoke_key(self.state, key_id)
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        else:
            session.flash.append(("ok", f"Key {prefix}… is revoked; requests with it now get 401."))
        return _redirect(request, "/settings/api-keys")

    # -- deployments and deploy views ---------------------------------------------------

    async def deployments_page(self, request: Request, session: Session) -> Response:
        context = await self.context(session, "Deployments", "deployments")
        deployments = await data.list_deployments(self.state, context["workspace_id"])
        rows = []
        for d in deployments:
            rows.append(
                {
                    **d.__dict__,
                    "status_label": d.status_label,
                    "badge": d.badge,
                    "latency_svg": sparkline(d.latency_ms, label=f"{d.id} latency", unit=" ms"),
                    "error_svg": sparkline(
                        [v * 100 for v in d.error_rate], label=f"{d.id} error rate", unit="%", css_class="spark"
                    ),
                }
            )
        context.update(
            deployments=rows,
            counts={
                "active": sum(1 for d in deployments if d.status == "active"),
                "failed": sum(1 for d in deployments if d.status == "failed"),
                "verifying": sum(1 for d in deployments if d.status not in ("active", "failed")),
            },
            window_label=data.METRICS_WINDOW_LABEL,
            bucket_label=data.METRICS_BUCKET_LABEL,
        )
        return render(request, "deployments.html", context, session=session)

    async def verify_deployment(self, request: Request, session: Session) -> Response:
        form = await read_form(request)
        deployment_id = form_text(form, "deployment_id")
        try:
            status, message = await data.verify_deployment(self.state, deployment_id)
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        else:
            if status == "active":
                session.flash.append(("ok", f"{deployment_id} passed verification and is active."))
            else:
                session.flash.append(("error", f"{deployment_id} failed verification: {message}"))
        return _redirect(request, "/deployments")

    async def deployment_deploy(self, request: Request, session: Session) -> Response:
        deployment_id = request.path_params["deployment_id"]
        context = await self.context(session, "Deploy", "deployments")
        deployment = await data.get_deployment(self.state, deployment_id, context["workspace_id"])
        if deployment is None:
            return self._not_found(request, session, context, f"No deployment {deployment_id!r} in this workspace.")
        root = f"{_origin(request, self.state)}/v1"
        operations = [(op, deployment.id) for op in deployment.verified_operations]
        voices = {deployment.id: deployment.voices[0]} if deployment.voices else {}
        context.update(
            subject_kind="deployment",
            subject_id=deployment.id,
            status_label=deployment.status_label,
            badge=deployment.badge,
            root_base_url=root,
            scoped_base_url=root,
            pipeline_id=None,
            stages=None,
            verified_operations=deployment.verified_operations,
            snippet_groups=snippets_for(root_base_url=root, operations=operations, voices=voices),
            new_key=None,
        )
        return render(request, "deploy.html", context, session=session)

    async def pipelines_page(self, request: Request, session: Session) -> Response:
        context = await self.context(session, "Pipelines", "pipelines")
        workspace_id = context["workspace_id"]
        pipelines = await data.list_pipelines(self.state, workspace_id) if workspace_id else []
        deployments = {d.id: d for d in await data.list_deployments(self.state, workspace_id)}
        context["pipelines"] = [
            {
                "view": p,
                "ready": all(
                    deployments.get(dep) is not None and deployments[dep].status == "active"
                    for dep in p.stages.values()
                ),
            }
            for p in pipelines
        ]
        return render(request, "pipelines.html", context, session=session)

    async def pipeline_deploy(self, request: Request, session: Session) -> Response:
        pipeline_id = request.path_params["pipeline_id"]
        context = await self.context(session, "Deploy", "pipelines")
        workspace_id = context["workspace_id"]
        pipelines = await data.list_pipelines(self.state, workspace_id) if workspace_id else []
        pipeline = next((p for p in pipelines if p.id == pipeline_id), None)
        if pipeline is None:
            return self._not_found(request, session, context, f"No pipeline {pipeline_id!r} in this workspace.")
        deployments = {d.id: d for d in await data.list_deployments(self.state, workspace_id)}
        stage_deployments = [deployments.get(dep) for dep in pipeline.stages.values()]
        ready = all(d is not None and d.status == "active" for d in stage_deployments)
        operations: list[tuple[str, str | None]] = [("voice.pipeline", None)] if ready else []
        voices: dict[str, str] = {}
        seen: set[tuple[str, str]] = set()
        for d in stage_deployments:
            if d is None:
                continue
            if d.voices:
                voices[d.id] = d.voices[0]
            for op in d.verified_operations:
                if (op, d.id) not in seen:
                    seen.add((op, d.id))
                    operations.append((op, d.id))
        root = f"{_origin(request, self.state)}/v1"
        context.update(
            subject_kind="pipeline",
            subject_id=pipeline.id,
            status_label="verified · active" if ready else "waiting on a stage",
            badge="ok" if ready else "warn",
            root_base_url=root,
            scoped_base_url=f"{root}/{pipeline.id}",
            pipeline_id=pipeline.id,
            stages=pipeline.stages,
            verified_operations=tuple(op for op, _ in operations),
            snippet_groups=snippets_for(
                root_base_url=root, operations=operations, pipeline_id=pipeline.id, voices=voices
            ),
            new_key=session.pop_pending_secret(),
        )
        return render(request, "deploy.html", context, session=session)

    def _not_found(self, request: Request, session: Session, context: dict[str, Any], message: str) -> Response:
        context.update(heading="Not found", message=message)
        return render(request, "error.html", context, session=session, status_code=404)

    # -- usage & credits ----------------------------------------------------------------

    async def credits_page(self, request: Request, session: Session) -> Response:
        context = await self.context(session, "Usage & credits", "usage")
        workspace_id = context["workspace_id"]
        balance_cents, held_cents = (0.0, 0.0)
        days: Sequence[data.DayPoint] = []
        latest: Sequence[data.RequestView] = []
        if workspace_id:
            balance_cents, held_cents = await data.balance(self.state, workspace_id)
            days = await data.usage_per_day(self.state, workspace_id, USAGE_DAYS)
            latest = await data.latest_requests(self.state, workspace_id, 25)
        context.update(
            balance_cents=balance_cents,
            held_cents=held_cents,
            days=USAGE_DAYS,
            total_requests=sum(d.requests for d in days),
            spend_chart=bar_chart(
                [(d.day, d.spend_cents) for d in days], label="Spend per day (cents)", value_format="{:.3g}¢"
            ),
            requests_chart=bar_chart([(d.day, float(d.requests)) for d in days], label="Requests per day",
                                     value_format="{:.0f}"),
            requests=latest,
        )
        return render(request, "credits.html", context, session=session)

    async def topup(self, request: Request, session: Session) -> Response:
        form = await read_form(request)
        workspace_id = form_text(form, "workspace_id")
        raw = form_text(form, "cents")
        try:
            cents = float(raw)
            if cents != cents or abs(cents) == float("inf") or abs(cents) > 1e12:
                raise ValueError
        except ValueError:
            session.flash.append(("error", f"Amount must be a number of cents, got {raw[:40]!r}."))
            return _redirect(request, "/credits")
        try:
            balance_cents = await data.adjust_credits(self.state, workspace_id, cents)
        except errors.GatewayError as exc:
            session.flash.append(("error", exc.message))
        else:
            session.flash.append(("ok", f"Balance of {workspace_id} is now {balance_cents:,.4f}¢."))
        return _redirect(request, "/credits")
