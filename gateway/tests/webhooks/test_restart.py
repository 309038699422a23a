"""The dispatcher killed (-9) mid-dispatch and restarted: nothing lost, duplicates only with the same id."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.service import WebhookService

from .conftest import BOTH_STORES, WORKSPACE
from .helpers import delivery_states, enqueue, wait_until_sync
from .receiver import Receiver
from .verify import verify_with_peer, verify_with_sdk

EVENTS = 12


@contextmanager
def worker(db: Database, data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The dispatcher in a child process of its own, over the same SQLite file."""
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runinfra_gateway.webhooks.worker",
                "--database-url",
                db.url,
                "--data-dir",
                str(data_dir),
                "--allow-host",
                "127.0.0.1",
                "--retry-schedule",
                "0,0.2,0.2,0.2,0.2",
                "--timeout",
                "1.5",
                "--lease",
                "2",
                "--concurrency",
                "4",
                "--poll-interval",
                "0.05",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


@BOTH_STORES
def test_kill_9_mid_dispatch_loses_nothing(
    db: Database, service: WebhookService, receiver: Receiver, tmp_path: Path
) -> None:
    endpoint = asyncio.run(service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/slow/0.4")))
    assert endpoint.secret is not None
    enqueued = [enqueue(db, "key.created", {"key_id": f"key_{n}"})[0] for n in range(EVENTS)]
    log = tmp_path / "worker.log"

    with worker(db, tmp_path / "data", log) as first:
        wait_until_sync(lambda: len(receiver.received) >= 5 and receiver.in_flight >= 1, 20, what="requests in flight")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    in_flight_at_kill = receiver.in_flight
    assert in_flight_at_kill >= 1
    assert "pending" in delivery_states(db)  # the kill left work undone

    with worker(db, tmp_path / "data", log):
        wait_until_sync(
            lambda: delivery_states(db) == ["delivered"] * EVENTS, 30, what="every delivery after the restart"
        )

    by_id: dict[str, list[bytes]] = defaultdict(list)
    for received in receiver.received:
        by_id[json.loads(received.body)["id"]].append(received.body)
    assert set(by_id) == set(enqueued)  # nothing lost, nothing invented
    assert all(len(set(bodies)) == 1 for bodies in by_id.values())  # a duplicate is the same event, byte for byte
    assert len(receiver.received) > EVENTS  # the attempts cut off by the kill were sent again
    for received in receiver.received:
        assert verify_with_sdk(received, endpoint.secret)["id"] in by_id
    assert all(p["ok"] for p in verify_with_peer([(r, endpoint.secret) for r in receiver.received]))
    text = log.read_text()
    assert "webhook.attempt" in text
    assert "outcome=delivered" in text
    assert endpoint.secret not in text


def test_sigterm_lets_attempts_in_flight_finish_and_records_them(
    db: Database, service: WebhookService, receiver: Receiver, tmp_path: Path
) -> None:
    asyncio.run(service.create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/slow/0.5")))
    for n in range(3):
        enqueue(db, "key.created", {"key_id": f"key_{n}"})
    with worker(db, tmp_path / "data", tmp_path / "worker.log") as process:
        wait_until_sync(lambda: receiver.in_flight == 3, 20, what="three requests in flight")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert delivery_states(db) == ["delivered"] * 3  # recorded before exit: nothing will be sent twice
    assert len(receiver.received) == 3
