"""https endpoints: certificates are verified against the host name, the resolver's checked address is used."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService

from .conftest import FAST, WORKSPACE
from .helpers import delivery_states, dispatching, enqueue, wait_until
from .receiver import Receiver
from .tls import make_pki
from .verify import verify_with_peer, verify_with_sdk


def test_https_delivery_verifies_the_certificate(db: Database, box: SecretBox, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    receiver = Receiver(tls=pki.server_context)
    # "localhost" is allowed to resolve to loopback here; its name is what the certificate must carry.
    trusting = replace(FAST, allowed_hosts=frozenset({"localhost"}), tls_ca_file=str(pki.ca_file))
    untrusting = replace(trusting, tls_ca_file=None)

    async def scenario() -> None:
        service = WebhookService(db, trusting, box)
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok", host="localhost"))
        assert endpoint.secret is not None
        enqueue(db, "key.created", {"key_id": "over-tls"})
        async with dispatching(db, box, untrusting):
            await wait_until(lambda: delivery_states(db) == ["failed"], what="certificate failures")
        (refused,) = await service.list_deliveries()
        assert all("certificate verify failed" in a["error"] for a in refused["attempt_log"])
        assert receiver.received == []

        await service.set_enabled(endpoint.id, True)  # the failures disabled it
        await service.replay(refused["event_id"])
        async with dispatching(db, box, trusting):
            await wait_until(lambda: len(receiver.received) == 1, what="the delivery over TLS")
        event = verify_with_sdk(receiver.received[0], endpoint.secret)
        assert event["data"] == {"key_id": "over-tls"}
        assert verify_with_peer([(receiver.received[0], endpoint.secret)])[0]["ok"]

    try:
        asyncio.run(scenario())
    finally:
        receiver.close()
