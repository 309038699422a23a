"""Signed deliveries to a real receiver, verified by our SDK and the published runinfra==0.2.0."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.outbox import enqueue_event
from runinfra_gateway.webhooks.runtime import open_webhooks
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService

from .conftest import BOTH_STORES, FAST, OTHER_WORKSPACE, WORKSPACE
from .helpers import delivery_states, dispatching, enqueue, wait_until
from .receiver import RawReceiver, Receiver
from .verify import verify_with_peer, verify_with_sdk


@BOTH_STORES
def test_delivery_is_signed_and_verifies_with_both_sdks(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        assert endpoint.secret is not None
        assert endpoint.secret.startswith("whsec_")
        assert len(endpoint.secret) == len("whsec_") + 64
        created = enqueue(db, "key.created", {"key_id": "key_1", "name": "ci"})
        async with dispatching(db, box):
            await wait_until(lambda: len(receiver.received) == 1, what="one delivery")
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="the delivery recorded")
        received = receiver.received[0]
        assert received.headers["content-type"] == "application/json"
        assert received.headers["runinfra-event-id"] == created[0]
        header = received.headers["runinfra-signature"]
        assert header.startswith("t=")
        assert header.count("v1=") == 1
        event = verify_with_sdk(received, endpoint.secret)
        assert event["id"] == created[0]
        assert event["type"] == "key.created"
        assert event["workspace"] == WORKSPACE
        assert event["data"] == {"key_id": "key_1", "name": "ci"}
        assert isinstance(event["created"], int)
        assert set(event) == {"id", "type", "created", "workspace", "data"}
        (peer,) = verify_with_peer([(received, endpoint.secret)])
        assert peer["ok"], peer
        assert peer["event"]["id"] == created[0]
        wrong = verify_with_peer([(received, "whsec_" + "0" * 64)])
        assert wrong[0]["ok"] is False

        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        assert logged["state"] == "delivered"
        assert logged["attempts"] == 1
        (attempt,) = logged["attempt_log"]
        assert attempt["status"] == 200
        assert attempt["outcome"] == "delivered"
        assert attempt["error"] is None
        assert attempt["latency_ms"] >= 0

    asyncio.run(scenario())


@BOTH_STORES
def test_event_filter_and_workspace_scope(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"), events=["key.revoked"])
        await service.create_endpoint(workspace_id=OTHER_WORKSPACE, url=receiver.url("/ok"))
        enqueue(db, "key.created", {"key_id": "k"})  # nobody in WORKSPACE subscribes
        revoked = enqueue(db, "key.revoked", {"key_id": "k"})
        # workspace None: every workspace with a subscribed endpoint gets its own event.
        verified = enqueue(db, "deployment.verified", {"deployment_id": "smollm2"}, workspace=None)
        assert len(verified) == 1
        async with dispatching(db, box):
            await wait_until(lambda: len(receiver.received) == 2, what="two deliveries")
            await asyncio.sleep(0.3)
        bodies = sorted((json.loads(r.body)["type"], json.loads(r.body)["workspace"]) for r in receiver.received)
        assert bodies == [("deployment.verified", OTHER_WORKSPACE), ("key.revoked", WORKSPACE)]
        assert {json.loads(r.body)["id"] for r in receiver.received} == {revoked[0], verified[0]}

    asyncio.run(scenario())


@BOTH_STORES
def test_failing_receiver_is_retried_with_the_same_id_and_body(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/fail-then-ok/2"))
        assert endpoint.secret is not None
        enqueue(db, "credits.low", {"balance_cents": 12.5, "threshold_cents": 100})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="delivery after two failures")
        assert len(receiver.received) == 3
        assert len({r.body for r in receiver.received}) == 1
        for received in receiver.received:
            assert verify_with_sdk(received, endpoint.secret)["type"] == "credits.low"
        assert all(p["ok"] for p in verify_with_peer([(r, endpoint.secret) for r in receiver.received]))
        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        log = logged["attempt_log"]
        assert [(a["attempt"], a["status"], a["outcome"]) for a in log] == [
            (1, 500, "retry"),
            (2, 500, "retry"),
            (3, 200, "delivered"),
        ]
        assert log[0]["error"] == "receiver answered 500"
        # The schedule (0, 0.1, 0.2) spaced the attempts.
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:])]
        assert gaps[0] >= 0.09
        assert gaps[1] >= 0.19

    asyncio.run(scenario())


def test_timeout_is_recorded_and_retried(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/slow-first/2.5"))
        enqueue(db, "usage.daily", {"date": "2026-11-26", "requests": 3})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="delivery after a timeout")
        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        first, second = logged["attempt_log"]
        assert first["status"] is None
        assert first["error"] == "timed out after 1 s"
        assert first["outcome"] == "retry"
        assert first["latency_ms"] >= 900  # it waited for the timeout, not for the 2.5 s answer (status None)
        assert second["status"] == 200

    asyncio.run(scenario())


def test_retry_after_is_honoured(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/retry-after/1"))
        enqueue(db, "key.created", {"key_id": "k"})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="delivery after 429")
        first, second = receiver.received
        # The schedule alone would retry after 0.1 s; the receiver asked for 1 s.
        assert second.at - first.at >= 1.0

    asyncio.run(scenario())


@BOTH_STORES
def test_gone_disables_the_endpoint(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/gone"))
        enqueue(db, "key.created", {"key_id": "a"})
        async with dispatching(db, box):
            await wait_until(lambda: "failed" in delivery_states(db), what="the 410")
            enqueue(db, "key.created", {"key_id": "b"})
            await asyncio.sleep(0.4)
        assert len(receiver.received) == 1  # nothing more was sent to a 410 endpoint
        view = await service.get_endpoint(endpoint.id)
        assert view.enabled is False
        assert view.disabled_reason == "the receiver answered 410 Gone"
        assert sorted(delivery_states(db)) == ["failed"]  # the second event owes it nothing: it was disabled first

    asyncio.run(scenario())


def test_redirect_is_not_followed(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/redirect"))
        enqueue(db, "key.created", {"key_id": "a"})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["failed"], what="three redirects")
        assert [r.path for r in receiver.received] == ["/redirect"] * 3  # /ok never reached
        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        assert [a["status"] for a in logged["attempt_log"]] == [302, 302, 302]
        assert logged["attempt_log"][0]["error"] == "redirect (302) not followed"

    asyncio.run(scenario())


def test_persistent_failure_disables_the_endpoint(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/always/503"))
        event_ids = enqueue(db, "credits.depleted", {"balance_cents": 0})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["failed"], what="the schedule to run out")
        assert len(receiver.received) == FAST.max_attempts
        view = await service.get_endpoint(endpoint.id)
        assert view.enabled is False
        assert view.disabled_reason == f"persistent failure: 3 attempts of event {event_ids[0]} failed"
        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        assert [a["outcome"] for a in logged["attempt_log"]] == ["retry", "retry", "failed"]

    asyncio.run(scenario())


def test_concurrency_is_bounded(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/slow/0.3"))
        for n in range(10):
            enqueue(db, "key.created", {"key_id": f"k{n}"})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"] * 10, what="ten deliveries")
        assert receiver.max_in_flight == FAST.max_concurrency

    asyncio.run(scenario())


@BOTH_STORES
def test_replay_and_test_event(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        assert endpoint.secret is not None
        (event_id,) = enqueue(db, "deployment.failed", {"deployment_id": "d", "error": "probe failed"})
        async with dispatching(db, box) as dispatcher:
            await wait_until(lambda: len(receiver.received) == 1, what="the original")
            replayed = await service.replay(event_id)
            assert [d["origin"] for d in replayed] == ["replay"]
            dispatcher.wake()
            await wait_until(lambda: len(receiver.received) == 2, what="the replay")
            test = await service.send_test(endpoint.id)
            await wait_until(lambda: len(receiver.received) == 3, what="the test event")
        original, replay, test_delivery = receiver.received
        assert replay.body == original.body  # same id, same bytes: receivers de-duplicate
        assert verify_with_sdk(replay, endpoint.secret)["id"] == event_id
        test_event = verify_with_sdk(test_delivery, endpoint.secret)
        assert test_event["type"] == "webhook.test"
        assert test_event["id"] == test["event"]["id"]
        events = await service.list_events(workspace_id=WORKSPACE)
        assert {e["id"] for e in events} == {event_id, test_event["id"]}

    asyncio.run(scenario())


def test_disabled_endpoint_receives_nothing_until_enabled(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        async with dispatching(db, box):
            enqueue(db, "key.created", {"key_id": "a"})
            await wait_until(lambda: len(receiver.received) == 1, what="first")
            await service.set_enabled(endpoint.id, False)
            assert enqueue(db, "key.created", {"key_id": "b"})  # recorded, owed to no endpoint
            await asyncio.sleep(0.3)
            assert len(receiver.received) == 1
            await service.set_enabled(endpoint.id, True)
            enqueue(db, "key.created", {"key_id": "c"})
            await wait_until(lambda: len(receiver.received) == 2, what="after enabling")
        assert [json.loads(r.body)["data"]["key_id"] for r in receiver.received] == ["a", "c"]

    asyncio.run(scenario())


@BOTH_STORES
def test_deleting_an_endpoint_drops_its_deliveries_even_one_in_flight(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        doomed = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/slow/0.6"))
        kept = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        async with dispatching(db, box):
            first = enqueue(db, "key.created", {"key_id": "a"})
            await wait_until(lambda: receiver.in_flight == 1 and len(receiver.bodies("/slow/0.6")) == 1,
                             what="the doomed endpoint's delivery in flight")
            assert await service.delete_endpoint(doomed.id) == {
                "id": doomed.id, "object": "webhook_endpoint", "deleted": True}
            await wait_until(lambda: receiver.in_flight == 0, what="the in-flight attempt answered")
            enqueue(db, "key.created", {"key_id": "b"})
            await wait_until(lambda: delivery_states(db) == ["delivered", "delivered"], what="the kept endpoint's")
        assert "webhook.record_failed" not in caplog.text  # the attempt in flight found nothing to record on
        assert len(receiver.bodies("/slow/0.6")) == 1
        assert [json.loads(r.body)["data"]["key_id"] for r in receiver.bodies("/ok")] == ["a", "b"]
        assert await service.list_deliveries(endpoint_id=doomed.id) == []
        assert [e.id for e in await service.list_endpoints(WORKSPACE)] == [kept.id]
        assert first[0] in [e["id"] for e in await service.list_events(workspace_id=WORKSPACE)]
        with pytest.raises(GatewayError) as missing:
            await service.delete_endpoint(doomed.id)
        assert missing.value.status == 404

    asyncio.run(scenario())


@BOTH_STORES
def test_updating_an_endpoint_moves_its_deliveries_and_filter_and_keeps_its_secret(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"),
                                                 events=["key.created"])
        assert endpoint.secret is not None
        updated = await service.update_endpoint(endpoint.id, {"url": receiver.url("/ok/moved"),
                                                              "events": ["key.revoked"], "description": "moved"})
        assert (updated.url, updated.events, updated.description) == (
            receiver.url("/ok/moved"), ["key.revoked"], "moved")
        assert updated.secret is None  # never shown again
        async with dispatching(db, box):
            assert enqueue(db, "key.created", {"key_id": "a"})  # no longer subscribed
            enqueue(db, "key.revoked", {"key_id": "b"})
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="the moved delivery")
        (received,) = receiver.received
        assert received.path == "/ok/moved"
        assert verify_with_sdk(received, endpoint.secret)["data"] == {"key_id": "b"}

        refusals = [
            ({}, None),
            ({"secret": "mine"}, "secret"),
            ({"url": "https://10.0.0.1/hook"}, "url"),
            ({"url": 7}, "url"),
            ({"events": ["nope"]}, "events"),
            ({"description": "x" * 501}, "description"),
        ]
        for changes, param in refusals:
            with pytest.raises(GatewayError) as refused:
                await service.update_endpoint(endpoint.id, changes)
            assert (refused.value.status, refused.value.param) == (400, param), changes
        with pytest.raises(GatewayError) as missing:
            await service.update_endpoint("we_missing", {"description": "x"})
        assert missing.value.status == 404
        assert (await service.get_endpoint(endpoint.id)).url == receiver.url("/ok/moved")  # refusals changed nothing

    asyncio.run(scenario())


def test_secret_rotation_overlap(db: Database, box: SecretBox, service: WebhookService, receiver: Receiver) -> None:
    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        old = endpoint.secret
        rotated = await service.rotate_secret(endpoint.id, overlap_seconds=3)
        new = rotated.secret
        assert old
        assert new
        assert old != new
        assert rotated.previous_secret_expires is not None
        async with dispatching(db, box):
            enqueue(db, "key.created", {"key_id": "during"})
            await wait_until(lambda: len(receiver.received) == 1, what="delivery during the overlap")
            await asyncio.sleep(max(0.0, (rotated.previous_secret_expires or 0) + 1 - time.time()))
            enqueue(db, "key.created", {"key_id": "after"})
            await wait_until(lambda: len(receiver.received) == 2, what="delivery after the overlap")
        during, after = receiver.received
        assert during.headers["runinfra-signature"].count("v1=") == 2
        assert verify_with_sdk(during, old)["data"] == {"key_id": "during"}
        assert verify_with_sdk(during, new)["data"] == {"key_id": "during"}
        assert after.headers["runinfra-signature"].count("v1=") == 1
        assert verify_with_sdk(after, new)["data"] == {"key_id": "after"}
        import runinfra

        with pytest.raises(runinfra.WebhookVerificationError):
            verify_with_sdk(after, old)
        peer = verify_with_peer([(during, old), (during, new), (after, new), (after, old)])
        assert [p["ok"] for p in peer] == [True, True, True, False]
        assert (await service.get_endpoint(endpoint.id)).previous_secret_expires is None

    asyncio.run(scenario())



def test_unopenable_secret_fails_on_the_record_without_sending(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver, tmp_path: Path
) -> None:
    """A replaced master key blocks only the deliveries it cannot sign; nothing unsigned is sent."""

    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        enqueue(db, "key.created", {"key_id": "k"})
        other_box = SecretBox.from_data_dir(tmp_path / "another-data-dir")
        async with dispatching(db, other_box):
            await wait_until(lambda: delivery_states(db) == ["failed"], what="the attempts to run out")
        assert receiver.received == []
        (logged,) = await service.list_deliveries()
        assert all(a["error"].startswith("not sent: the endpoint's signing secret") for a in logged["attempt_log"])

    asyncio.run(scenario())


def test_malformed_and_dropped_answers_are_failures_then_a_huge_body_is_cut_short(
    db: Database, box: SecretBox, service: WebhookService
) -> None:
    huge = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 100_000
    raw = RawReceiver([b"this is not HTTP\r\n\r\n", None, huge], linger=5)

    async def scenario() -> None:
        endpoint = await service.create_endpoint(workspace_id=WORKSPACE, url=raw.url("/hook"))
        enqueue(db, "key.created", {"key_id": "k"})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["delivered"], what="delivery on the third answer")
        (logged,) = await service.list_deliveries(endpoint_id=endpoint.id)
        first, second, third = logged["attempt_log"]
        assert first["status"] is None
        assert first["error"].startswith("ClientResponseError")
        assert second["status"] is None
        assert "ServerDisconnectedError" in second["error"]
        assert third["status"] == 200
        assert third["error"] is None
        assert third["latency_ms"] < 1_000  # did not wait for (or read) the 50 MB body
        assert all(b"runinfra-signature: t=" in r.lower() for r in raw.requests)

    try:
        asyncio.run(scenario())
    finally:
        raw.close()


def test_test_events_and_replays_do_not_wait_for_the_next_poll(
    db: Database, receiver: Receiver, tmp_path: Path
) -> None:
    webhooks = open_webhooks(
        db, data_dir=tmp_path / "data", table={"allowed_hosts": ["127.0.0.1"], "poll_interval_seconds": 60}
    )

    async def scenario() -> None:
        endpoint = await webhooks.service.create_endpoint(
            workspace_id=WORKSPACE, url=receiver.url("/ok"), events=["webhook.test"]
        )
        await webhooks.start()
        try:
            await asyncio.sleep(0.2)  # past the first (start-up) poll
            queued = await webhooks.service.send_test(endpoint.id)
            await wait_until(lambda: len(receiver.received) == 1, timeout=5, what="the test event, woken")
            await webhooks.service.replay(queued["event"]["id"])
            await wait_until(lambda: len(receiver.received) == 2, timeout=5, what="the replay, woken")
        finally:
            await webhooks.close()

    asyncio.run(scenario())


def test_events_from_the_gateway_wake_the_dispatcher_on_commit(
    db: Database, box: SecretBox, service: WebhookService, receiver: Receiver
) -> None:
    slow_poll = replace(FAST, poll_interval_seconds=60)

    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        async with dispatching(db, box, slow_poll):
            await asyncio.sleep(0.2)  # past the first (start-up) poll
            await db.run(lambda session: enqueue_event(session, workspace_id=WORKSPACE, type="key.created", data={}))
            await wait_until(lambda: len(receiver.received) == 1, timeout=5, what="the event, woken by its commit")
        # With no dispatcher listening any more, enqueuing still just works.
        enqueue(db, "key.created", {"key_id": "later"})

    asyncio.run(scenario())


def test_hostile_answers_are_logged_without_control_characters(
    db: Database, box: SecretBox, service: WebhookService
) -> None:
    body = b"\x1b[2J\x1b]0;owned\x07boom\r\nmore"
    raw = RawReceiver([
        b"HTTP/1.1 500 Bad\x1b[31mThing\r\nConnection: close\r\n\r\n",
        b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
    ])

    async def scenario() -> None:
        await service.create_endpoint(workspace_id=WORKSPACE, url=raw.url("/hook"))
        enqueue(db, "key.created", {"key_id": "k"})
        async with dispatching(db, box):
            await wait_until(lambda: delivery_states(db) == ["failed"], what="three failed answers")
        (logged,) = await service.list_deliveries()
        texts = [a["error"] for a in logged["attempt_log"]] + [a["response_excerpt"] for a in logged["attempt_log"]]
        assert any(t and "boom" in t for t in texts)
        assert all(t is None or t.isprintable() for t in texts)

    try:
        asyncio.run(scenario())
    finally:
        raw.close()
