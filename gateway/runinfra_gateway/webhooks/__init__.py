"""Signed webhook deliveries: endpoints, the durable outbox, the dispatcher, replay.

The rest of the gateway meets this package in three places:

* ``enqueue_event(session, *, workspace_id, type, data)`` records an event in the
  caller's transaction (key created/revoked, deployment verified/failed, credit
  thresholds crossed);
* ``open_webhooks(db, data_dir=..., table=...)`` builds the runtime the core keeps
  on ``GatewayState.webhooks`` (its ``service`` backs ``/admin/v1/webhooks`` and
  the ``runinfra webhooks`` CLI; ``start()``/``close()`` run the dispatcher);
* ``sign`` / ``SIGNATURE_HEADER``: the ``RunInfra-Signature`` the SDK verifies.
"""

from runinfra_gateway.webhooks.events import EVENT_TYPES
from runinfra_gateway.webhooks.outbox import enqueue_event
from runinfra_gateway.webhooks.runtime import Webhooks, open_webhooks
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.signing import SIGNATURE_HEADER, sign

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "WebhookSettings", "Webhooks", "enqueue_event", "open_webhooks", "sign"]
