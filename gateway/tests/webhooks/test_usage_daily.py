"""usage.daily: yesterday's request log summarised once per workspace, by the runtime's periodic task."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runinfra_gateway.store import Database
from runinfra_gateway.store.models import RequestLog
from runinfra_gateway.webhooks.runtime import open_webhooks
from runinfra_gateway.webhooks.usage_digest import day_to_summarise, emit_usage_digests

from .conftest import BOTH_STORES, OTHER_WORKSPACE, WORKSPACE
from .helpers import wait_until
from .receiver import Receiver
from .verify import verify_with_peer, verify_with_sdk


def _log(db: Database, workspace: str, when: datetime, operation: str, status: int, cost: int) -> None:
    with db.session() as session:
        session.add(
            RequestLog(
                request_id=f"req_{when.timestamp()}_{operation}_{status}",
                workspace_id=workspace,
                key_id="key_1",
                deployment_id="d",
                operation=operation,
                method="POST",
                path="/v1/x",
                status=status,
                latency_ms=1.0,
                input_tokens=10,
                output_tokens=5,
                cost_microcents=cost,
                created_at=when.timestamp(),
            )
        )


def test_day_to_summarise() -> None:
    just_after_midnight = datetime(2026, 11, 27, 0, 2, tzinfo=timezone.utc)
    assert day_to_summarise(just_after_midnight, 300).isoformat() == "2026-11-25"  # the 26th still settling
    assert day_to_summarise(just_after_midnight + timedelta(minutes=4), 300).isoformat() == "2026-11-26"


@BOTH_STORES
def test_yesterday_is_summarised_once(db: Database, receiver: Receiver, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    yesterday = (now - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    _log(db, WORKSPACE, yesterday, "chat.completions", 200, 2_500_000)
    _log(db, WORKSPACE, yesterday + timedelta(hours=1), "chat.completions", 500, 0)
    _log(db, WORKSPACE, yesterday + timedelta(hours=2), "embeddings", 200, 500_000)
    _log(db, WORKSPACE, yesterday - timedelta(days=1), "embeddings", 200, 9_000_000)  # the day before: not counted
    _log(db, OTHER_WORKSPACE, yesterday, "embeddings", 200, 7_000_000)  # another workspace: not counted
    webhooks = open_webhooks(
        db,
        data_dir=tmp_path / "data",
        table={
            "allowed_hosts": ["127.0.0.1"],
            "poll_interval_seconds": 0.05,
            "usage_daily_delay_seconds": 0,
            "usage_daily_check_seconds": 0.1,
        },
    )

    async def scenario() -> None:
        endpoint = await webhooks.service.create_endpoint(
            workspace_id=WORKSPACE, url=receiver.url("/ok"), events=["usage.daily"]
        )
        assert endpoint.secret is not None
        await webhooks.start()
        try:
            await wait_until(lambda: len(receiver.received) == 1, what="usage.daily")
            await asyncio.sleep(0.5)  # several more checks: nothing new
        finally:
            await webhooks.close()
        assert len(receiver.received) == 1
        event = verify_with_sdk(receiver.received[0], endpoint.secret)
        assert event["type"] == "usage.daily"
        assert event["data"] == {
            "date": yesterday.date().isoformat(),
            "requests": 3,
            "errors": 1,
            "input_tokens": 30,
            "output_tokens": 15,
            "cost_cents": 3.0,
            "by_operation": {
                "chat.completions": {"requests": 2, "cost_cents": 2.5},
                "embeddings": {"requests": 1, "cost_cents": 0.5},
            },
        }
        assert verify_with_peer([(receiver.received[0], endpoint.secret)])[0]["ok"]

    asyncio.run(scenario())
    with db.session() as session:  # a restart (or a second replica) finds the mark
        assert emit_usage_digests(session, yesterday.date()) == []
