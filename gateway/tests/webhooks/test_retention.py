"""Retention: old settled events go with their deliveries and attempts; anything still owed stays."""

from __future__ import annotations

import asyncio
import time

import pytest
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent, WebhookUsageDigest
from runinfra_gateway.webhooks.retention import purge_expired
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings
from sqlalchemy import func, select, update

from .conftest import BOTH_STORES, WORKSPACE
from .helpers import delivery_states, dispatching, enqueue, wait_until
from .receiver import Receiver

DAY = 86_400


def _count(db: Database, model: type[object]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@BOTH_STORES
def test_old_settled_events_are_purged_and_owed_ones_kept(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> tuple[str, str, str]:
        delivered = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        old_done = enqueue(db, "key.created", {"key_id": "old"})[0]
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="the old delivery")
        await service.set_enabled(delivered.id, False)
        old_owed = enqueue(db, "key.created", {"key_id": "owed"})[0]  # recorded, owed to nobody
        await service.set_enabled(delivered.id, True)
        await service.replay(old_owed)  # now owed to the endpoint, and never sent (no dispatcher)
        recent = enqueue(db, "key.created", {"key_id": "recent"})[0]
        await service.set_enabled(delivered.id, False)  # so the recent one stays pending too
        with db.session() as session:
            session.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id.in_([old_done, old_owed]))
                .values(created_at=int(time.time()) - 40 * DAY)
            )
            session.add(WebhookUsageDigest(workspace_id=WORKSPACE, day="2000-01-01", event_id=old_done))
        return old_done, old_owed, recent

    old_done, old_owed, recent = asyncio.run(scenario())
    assert _count(db, WebhookAttempt) == 1
    with db.session() as session:
        assert purge_expired(session, retention_days=0) == 0  # 0 keeps everything
        assert purge_expired(session, retention_days=30) == 1
    with db.session() as session:
        remaining = set(session.scalars(select(WebhookEvent.id)))
        digests = list(session.scalars(select(WebhookUsageDigest.day)))
    assert old_done not in remaining
    assert remaining == {old_owed, recent}  # old_owed is as old, but still owed
    assert _count(db, WebhookAttempt) == 0
    assert _count(db, WebhookDelivery) == 2  # the owed replay and the recent one, both pending
    assert digests == []


def test_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        WebhookSettings.from_mapping({"retention_days": -1})
