"""The gateway's webhook runtime: the admin service and the dispatcher, opened and closed together.

The core builds it at start (``state.webhooks = open_webhooks(...)``) and calls
``start()`` / ``close()`` from the app's lifespan; the admin routes reach the
service through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.dispatcher import Dispatcher, EventLogger
from runinfra_gateway.webhooks.periodic import Periodic
from runinfra_gateway.webhooks.retention import purge_expired
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.usage_digest import emit_due_usage_digests

__all__ = ["Webhooks", "open_webhooks", "secret_box_for"]


class Webhooks:
    """What ``GatewayState.webhooks`` holds: ``service`` for the admin API, the dispatcher, timed upkeep."""

    def __init__(
        self, db: Database, settings: WebhookSettings, box: SecretBox, *, log_event: EventLogger | None = None
    ) -> None:
        self.settings = settings
        self.dispatcher = Dispatcher(db, settings, box, log_event=log_event)
        self.service = WebhookService(db, settings, box, on_enqueued=self.dispatcher.wake)
        self.usage_digest = Periodic(
            db,
            "usage_daily",
            settings.usage_daily_check_seconds,
            partial(emit_due_usage_digests, delay_seconds=settings.usage_daily_delay_seconds),
        )
        self.retention = Periodic(
            db,
            "retention",
            settings.retention_check_seconds,
            partial(purge_expired, retention_days=settings.retention_days),
        )

    def __repr__(self) -> str:
        return f"Webhooks(max_concurrency={self.settings.max_concurrency})"

    async def start(self) -> None:
        await self.dispatcher.start()
        self.usage_digest.start()
        self.retention.start()

    async def close(self) -> None:
        await self.retention.close()
        await self.usage_digest.close()
        await self.dispatcher.close()

    def wake(self) -> None:
        """Deliver what was just enqueued now rather than at the next poll."""
        self.dispatcher.wake()


def open_webhooks(
    db: Database,
    *,
    data_dir: Path,
    table: Mapping[str, Any] | None = None,
    log_event: EventLogger | None = None,
) -> Webhooks:
    """The runtime for a gateway: settings from its ``[webhooks]`` table, the master key from ``data_dir``.

    ``log_event`` receives one structured line per delivery attempt. Raises ``ValueError`` naming a bad setting.
    """
    settings = WebhookSettings.from_mapping(table)
    return Webhooks(db, settings, secret_box_for(settings, data_dir), log_event=log_event)


def secret_box_for(settings: WebhookSettings, data_dir: Path) -> SecretBox:
    """The operator's shared master key when configured, else the data directory's own."""
    if settings.master_key_file is not None:
        return SecretBox.from_key_file(Path(settings.master_key_file))
    return SecretBox.from_data_dir(data_dir)
