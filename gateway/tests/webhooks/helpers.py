"""Small async helpers shared by the webhook tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.dispatcher import Dispatcher
from runinfra_gateway.webhooks.models import WebhookDelivery
from runinfra_gateway.webhooks.outbox import enqueue_event
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.settings import WebhookSettings
from sqlalchemy import select

from .conftest import FAST, WORKSPACE


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def dispatching(db: Database, box: SecretBox, settings: WebhookSettings = FAST) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(db, settings, box)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()


def enqueue(db: Database, type: str, data: Mapping[str, Any], workspace: str | None = WORKSPACE) -> list[str]:
    """Write events the way the gateway's change points do: inside their own transaction."""
    with db.session() as session:
        return enqueue_event(session, workspace_id=workspace, type=type, data=data)


def wait_until_sync(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """``wait_until`` for tests that drive child processes from plain threads."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def delivery_states(db: Database) -> list[str]:
    """Every delivery's state, oldest first, read from SQL."""
    with db.session() as session:
        return list(session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.created_at)))
