"""Signed webhook deliveries: endpoints, the durable outbox, the dispatcher, replay.

The rest of the gateway meets this package in three places:

* ``enqueue_event(session, *, workspace_id, type, data)`` records an event in the
  caller's transaction (key created/revoked, deployment verified/failed, credit
  thresholds crossed);
* ``open_webhooks(db, data_dir=..., table=...)`` builds the runtime the core keeps
  on ``GatewayState.webhooks`` (its ``service`` backs ``/admin/v1/webhooks`` and
  the ``runinfra webhooks`` CLI; ``start()``/``close()`` run the dispatcher);
* ``sign`` / ``SIGNATURE_HEADER``: the ``RunInfra-Signature`` the SDK verifies.

The store-backed names load on first use, so reading the config (which imports
``webhooks.settings``) or running a CLI command does not import SQLAlchemy and aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from runinfra_gateway.webhooks.events import EVENT_TYPES
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.signing import SIGNATURE_HEADER, sign

if TYPE_CHECKING:
    from runinfra_gateway.webhooks.outbox import enqueue_event
    from runinfra_gateway.webhooks.runtime import Webhooks, open_webhooks

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "WebhookSettings", "Webhooks", "enqueue_event", "open_webhooks", "sign"]

_LAZY = {
    "enqueue_event": "runinfra_gateway.webhooks.outbox",
    "Webhooks": "runinfra_gateway.webhooks.runtime",
    "open_webhooks": "runinfra_gateway.webhooks.runtime",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
