"""Everything a running gateway holds, in one place: ``app.state.gateway`` for other owners' code.

Only the core constructs it (``runinfra_gateway.lifecycle``); others read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runinfra_gateway.auth import AdminToken, KeyTable
from runinfra_gateway.observability import AccessLog, Metrics, RequestLogWriter
from runinfra_gateway.pipeline_table import PipelineTable
from runinfra_gateway.registry import Registry
from runinfra_gateway.settings import Settings
from runinfra_gateway.store import Database

if TYPE_CHECKING:
    from runinfra_gateway.billing import Ledger
    from runinfra_gateway.idempotency import IdempotencyStore
    from runinfra_gateway.image_urls import ImageUrlStore
    from runinfra_gateway.limits import RateLimiter
    from runinfra_gateway.webhooks.secret_box import SecretBox

__all__ = ["GatewayState"]


@dataclass
class GatewayState:
    settings: Settings
    db: Database
    ledger: Ledger
    limiter: RateLimiter
    idempotency: IdempotencyStore
    registry: Registry
    pipelines: PipelineTable
    keys: KeyTable
    admin_token: AdminToken
    image_urls: ImageUrlStore
    metrics: Metrics
    access_log: AccessLog
    request_log: RequestLogWriter
    public_base_url: str
    webhooks: Any | None = None
    #: Seals upstream API keys of admin-registered deployments at rest.
    secret_box: SecretBox | None = None
    #: True once every configured deployment finished verification and is active.
    ready: bool = False
