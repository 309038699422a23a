"""credits.low and credits.depleted, fired by the real credit ledger as settled charges cross the lines."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from runinfra_gateway.billing import Ledger, Usage
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService

from .conftest import BOTH_STORES, WORKSPACE
from .helpers import dispatching, wait_until
from .receiver import Receiver
from .verify import verify_with_sdk

CENT = 1_000_000


@BOTH_STORES
def test_threshold_crossings_are_announced_once(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver, tmp_path: Path
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(
            workspace_id=WORKSPACE, url=receiver.url("/ok"), events=["credits.low", "credits.depleted"]
        )
        assert endpoint.secret is not None
        await service.set_credits_low_threshold(WORKSPACE, 5)
        ledger = Ledger(db, journal_path=tmp_path / "ledger.journal", topup_url="http://127.0.0.1/topup")
        await ledger.start()
        try:
            await ledger.open_account(WORKSPACE, 10)

            async def spend(cents: int, request_id: str) -> None:
                hold = await ledger.hold(WORKSPACE, cents * CENT, request_id=request_id)
                await ledger.settle(
                    hold, cents * CENT, request_id=request_id, key_id="key_1", deployment_id="d",
                    operation="chat.completions", usage=Usage(input_tokens=1), status=200,
                )
                await ledger.flush()

            await spend(3, "r1")  # 10 -> 7: above the line
            await spend(3, "r2")  # 7 -> 4: credits.low
            await spend(1, "r3")  # 4 -> 3: already below, nothing new
            hold = await ledger.hold(WORKSPACE, 3 * CENT, request_id="r4")
            await ledger.release(hold)  # a hold released again is no spending
            await ledger.flush()
            await ledger.adjust(WORKSPACE, -3)  # 3 -> 0: credits.depleted
            await ledger.flush()
        finally:
            await ledger.close()
        async with dispatching(db, box):
            await wait_until(lambda: len(receiver.received) == 2, what="two credit events")
            await asyncio.sleep(0.2)
        events = [verify_with_sdk(r, endpoint.secret) for r in receiver.received]
        by_type = {e["type"]: e for e in events}
        assert sorted(by_type) == ["credits.depleted", "credits.low"]
        assert by_type["credits.low"]["data"] == {"balance_cents": 4.0, "threshold_cents": 5.0}
        assert by_type["credits.depleted"]["data"] == {"balance_cents": 0}
        assert all(json.loads(r.body)["workspace"] == WORKSPACE for r in receiver.received)

    asyncio.run(scenario())
