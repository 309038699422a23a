"""The deployment registry: build each deployment's backend, verify it, and keep only verified ones active.

A deployment comes from the config file or the admin API. On start and on
every change the registry runs ``backend.verify(operations)``, one real probe
per declared operation; the deployment is *active* (listed, routable) only when
every probe passed. Until then, or after a failure, requests naming it get 404
``model_not_found``, exactly as for a model that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from runinfra_gateway.backends.base import Backend
from runinfra_gateway.billing import Prices
from runinfra_gateway.params import allowed_fields
from runinfra_gateway.settings import DeploymentConfig

__all__ = ["DeploymentRuntime", "ProgressCallback", "Registry", "build_backend"]

#: ``progress(deployment_id, message)``: what ``runinfra serve`` prints while models load.
ProgressCallback = Callable[[str, str], None]

# Keys of a deployment table that are secrets and never leave the gateway.
_SECRET_KEYS = frozenset({"api_key"})


@dataclass
class DeploymentRuntime:
    """A deployment as the request path sees it."""

    id: str
    config: DeploymentConfig
    source: str
    prices: Prices
    declared_operations: tuple[str, ...]
    allowed: Mapping[str, frozenset[str]]
    voices: tuple[str, ...] = ()
    engine_model: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    backend: Backend | None = None
    status: str = "pending"
    last_error: str | None = None
    verified_at: datetime | None = None
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def operations(self) -> tuple[str, ...]:
        """Verified operations (all declared ones, once active)."""
        return self.declared_operations if self.active else ()

    @property
    def workspace_id(self) -> str | None:
        return self.config.workspace_id

    def visible_to(self, workspace_id: str) -> bool:
        return self.config.workspace_id is None or self.config.workspace_id == workspace_id

    def model_object(self) -> dict[str, Any]:
        """The ``/v1/models`` entry."""
        entry: dict[str, Any] = {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": "runinfra",
            "operations": list(self.operations),
        }
        if "audio.speech" in self.declared_operations:
            entry["voices"] = list(self.voices)
        return entry

    def admin_object(self) -> dict[str, Any]:
        """The admin API's view: definition without secrets, status and probe results."""
        definition = {k: v for k, v in self.config.table.items() if k not in _SECRET_KEYS}
        return {
            "id": self.id,
            "backend": self.config.backend,
            "source": self.source,
            "status": self.status,
            "operations": list(self.declared_operations),
            "verified_operations": list(self.operations),
            "last_error": self.last_error,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "workspace_id": self.workspace_id,
            "voices": list(self.voices),
            "probes": self.probes,
            "definition": definition,
        }


def _describe(config: DeploymentConfig) -> tuple[Mapping[str, frozenset[str]], tuple[str, ...]]:
    """Allowed fields per operation and TTS voices, from the engine's own description or the table."""
    optional: Mapping[str, Any] = {}
    voices: tuple[str, ...] = tuple(str(v) for v in config.table.get("voices", ()) or ())
    if config.backend == "embedded":
        from runinfra_gateway.backends.embedded import describe

        info = describe(config.table)
        optional = dict(info.params)
        voices = tuple(info.voices) or voices
    allowed: dict[str, frozenset[str]] = {}
    for operation in config.operations:
        if config.params is not None:
            allowed[operation] = allowed_fields(operation, config.params)
        elif operation in optional:
            allowed[operation] = allowed_fields(operation, optional[operation])
        else:
            allowed[operation] = allowed_fields(operation, None)
    return allowed, voices


def build_backend(config: DeploymentConfig, *, data_dir: Path | None = None) -> Backend:
    """Construct the backend of a deployment (may load model weights: call from a worker thread).

    Embedded engines keep their caches (verified-weights stamps, trained weights) under
    ``data_dir`` (the gateway's ``--data-dir``) unless the deployment's table names its own.
    """
    if config.backend == "upstream":
        from runinfra_gateway.backends.upstream import UpstreamBackend

        upstream: Backend = UpstreamBackend.from_config(config.id, config.table)
        return upstream
    from runinfra_gateway.backends.embedded import create_embedded_backend

    table = config.table
    if data_dir is not None and "data_dir" not in table:
        table = {**table, "data_dir": str(data_dir)}
    embedded: Backend = create_embedded_backend(config.id, table)
    return embedded


def runtime_for(config: DeploymentConfig, source: str) -> DeploymentRuntime:
    """A not-yet-verified runtime; raises ``ValueError`` naming a bad price or engine option."""
    allowed, voices = _describe(config)
    return DeploymentRuntime(
        id=config.id,
        config=config,
        source=source,
        prices=Prices.from_mapping(config.table.get("prices")),
        declared_operations=config.operations,
        allowed=allowed,
        voices=voices,
        engine_model=str(config.table.get("model") or config.id),
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."


class Registry:
    """Deployment id → :class:`DeploymentRuntime`; verification runs here."""

    def __init__(
        self, *, on_change: Callable[[DeploymentRuntime], Any] | None = None, data_dir: Path | None = None
    ) -> None:
        self._data_dir = data_dir  # handed to embedded engines (see build_backend)
        self._by_id: dict[str, DeploymentRuntime] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._on_change = on_change

    def on_change(self, listener: Callable[[DeploymentRuntime], Any]) -> None:
        """Call ``listener(runtime)`` (sync or async) after every verification."""
        self._on_change = listener

    def get(self, deployment_id: str) -> DeploymentRuntime | None:
        return self._by_id.get(deployment_id)

    def active(self, deployment_id: str) -> DeploymentRuntime | None:
        runtime = self._by_id.get(deployment_id)
        return runtime if runtime is not None and runtime.status == "active" else None

    def all(self) -> list[DeploymentRuntime]:
        return list(self._by_id.values())

    def visible(self, workspace_id: str) -> list[DeploymentRuntime]:
        return [r for r in self._by_id.values() if r.status == "active" and r.visible_to(workspace_id)]

    def put(self, runtime: DeploymentRuntime) -> None:
        self._by_id[runtime.id] = runtime

    async def replace(self, runtime: DeploymentRuntime, progress: ProgressCallback | None = None) -> DeploymentRuntime:
        """Install ``runtime`` in place of any deployment with its id, then verify it."""
        old = self._by_id.get(runtime.id)
        self._by_id[runtime.id] = runtime
        if old is not runtime:
            await _close_engine(old)
        return await self.verify(runtime.id, progress)

    async def remove(self, deployment_id: str) -> None:
        """Stop routing to ``deployment_id`` and close its engine (as :meth:`replace` closes the one it replaces)."""
        await _close_engine(self._by_id.pop(deployment_id, None))

    async def verify(self, deployment_id: str, progress: ProgressCallback | None = None) -> DeploymentRuntime:
        """(Re)build if needed and run every probe; the outcome decides whether the deployment is active."""
        runtime = self._by_id[deployment_id]
        lock = self._locks.setdefault(deployment_id, asyncio.Lock())
        async with lock:
            say = progress or (lambda _id, _msg: None)
            runtime.status = "verifying"
            started = time.monotonic()
            try:
                if runtime.backend is None:
                    say(runtime.id, f"loading ({runtime.config.backend})")
                    runtime.backend = await asyncio.to_thread(build_backend, runtime.config, data_dir=self._data_dir)
                say(runtime.id, f"verifying {', '.join(runtime.declared_operations)}")
                results = await runtime.backend.verify(list(runtime.declared_operations))
            except Exception as exc:  # a broken engine must not take the gateway down
                runtime.status = "failed"
                runtime.last_error = _short(exc)
                runtime.probes = []
            else:
                runtime.probes = [
                    {
                        "operation": r.operation,
                        "ok": r.ok,
                        "message": r.message,
                        "latency_ms": round(r.latency_ms, 2),
                    }
                    for r in results
                ]
                passed = {r.operation for r in results if r.ok}
                missing = [op for op in runtime.declared_operations if op not in passed]
                if missing:
                    messages = "; ".join(f"{r.operation}: {r.message}" for r in results if not r.ok)
                    runtime.status = "failed"
                    runtime.last_error = f"probes failed for {', '.join(missing)}" + (
                        f" ({messages})" if messages else ""
                    )
                else:
                    runtime.status = "active"
                    runtime.last_error = None
            runtime.verified_at = datetime.now(timezone.utc)
            elapsed = time.monotonic() - started
            if runtime.active:
                say(runtime.id, f"verified in {elapsed:.1f}s: {', '.join(runtime.operations)}")
            else:
                say(runtime.id, f"FAILED verification: {runtime.last_error}")
            if self._on_change is not None:
                result = self._on_change(runtime)
                if asyncio.iscoroutine(result):
                    await result
            return runtime

    async def aclose(self) -> None:
        for runtime in self._by_id.values():
            if runtime.backend is not None:
                with contextlib.suppress(Exception):  # closing the others matters more than one failed close
                    await runtime.backend.aclose()
                runtime.backend = None


async def _close_engine(runtime: DeploymentRuntime | None) -> None:
    """Close the engine of a runtime that is no longer routed (one that was never built has none)."""
    if runtime is not None and runtime.backend is not None:
        await runtime.backend.aclose()
