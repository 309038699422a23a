"""Webhook throughput: enqueue cost in the caller's transaction, and signed deliveries per second.

A receiver (aiohttp, its own process so it does not share our GIL) answers 200 on
127.0.0.1; the dispatcher sends N events to it over a fresh SQLite file. Prints:
  * milliseconds per ``enqueue_event`` (one event + one delivery row, one transaction each),
  * deliveries per second end to end (claim, sign, POST, record), for each concurrency asked.

Run: .venv/bin/python bench/webhooks_dispatch.py [--events N] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web
from runinfra_gateway.store import Database
from runinfra_gateway.store.migrate import upgrade
from runinfra_gateway.store.models import Workspace
from runinfra_gateway.webhooks.dispatcher import Dispatcher
from runinfra_gateway.webhooks.models import WebhookDelivery
from runinfra_gateway.webhooks.outbox import enqueue_event
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings
from sqlalchemy import func, select


def _serve(port: int) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", ok)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the receiver did not start")


async def _run(events: int, concurrency: int, url: str) -> tuple[float, float]:
    directory = Path(tempfile.mkdtemp(prefix="runinfra-webhooks-bench-"))
    db = Database(f"sqlite:///{directory / 'bench.sqlite3'}")
    upgrade(db)
    with db.session() as session:
        session.add(Workspace(id="bench", name="bench", created=datetime.now(timezone.utc)))
    box = SecretBox.from_data_dir(directory)
    settings = WebhookSettings(
        allowed_hosts=frozenset({"127.0.0.1"}), poll_interval_seconds=0.05, max_concurrency=concurrency
    )
    await WebhookService(db, settings, box).create_endpoint(workspace_id="bench", url=url)
    started = time.perf_counter()
    for n in range(events):
        with db.session() as session:
            enqueue_event(session, workspace_id="bench", type="key.created", data={"key_id": f"key_{n}"})
    enqueued = time.perf_counter()
    dispatcher = Dispatcher(db, settings, box)
    await dispatcher.start()
    while True:
        with db.session() as session:
            done = session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.state == "delivered")
            )
        if done == events:
            break
        await asyncio.sleep(0.01)
    finished = time.perf_counter()
    await dispatcher.close()
    db.close()
    return (enqueued - started) / events * 1000, events / (finished - enqueued)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    port = _free_port()
    receiver = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    receiver.start()
    try:
        _wait_listening(port)
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            enqueue_ms, per_second = asyncio.run(_run(args.events, concurrency, f"http://127.0.0.1:{port}/hook"))
            print(
                f"concurrency {concurrency:>3}: enqueue {enqueue_ms:.2f} ms/event; "
                f"dispatch {per_second:.0f} deliveries/s ({args.events} events, SQLite, loopback)"
            )
    finally:
        receiver.terminate()
        receiver.join()


if __name__ == "__main__":
    main()
