"""Run the webhook dispatcher on its own: ``python -m runinfra_gateway.webhooks.worker``.

The gateway runs a dispatcher in-process; this entry point runs one beside it
(or instead of it, or in a test) over the same database and data directory.
It stops on SIGTERM/SIGINT, letting attempts in flight finish.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from runinfra_gateway.settings import read_config_document
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.dispatcher import Dispatcher
from runinfra_gateway.webhooks.runtime import secret_box_for
from runinfra_gateway.webhooks.secret_box import SecretBox
from runinfra_gateway.webhooks.settings import WebhookSettings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runinfra_gateway.webhooks.worker", description="Deliver pending webhook events."
    )
    parser.add_argument("--database-url", required=True, help="the gateway's database URL")
    parser.add_argument("--data-dir", required=True, type=Path, help="the gateway's data directory (master key)")
    parser.add_argument("--config", type=Path, help="the gateway's TOML config: its [webhooks] table is used")
    parser.add_argument("--allow-host", action="append", default=[], help="host allowed over http/private addresses")
    parser.add_argument("--retry-schedule", help="comma-separated delays in seconds before each attempt")
    parser.add_argument("--timeout", type=float, help="seconds per attempt (default 10)")
    parser.add_argument("--lease", type=float, help="seconds a claimed delivery stays claimed")
    parser.add_argument("--concurrency", type=int, help="attempts in flight at most (default 8)")
    parser.add_argument("--poll-interval", type=float, help="seconds between looks for due deliveries")
    return parser


def settings_from_args(args: argparse.Namespace) -> WebhookSettings:
    """The config file's ``[webhooks]`` table (if given), overridden by the flags."""
    table: dict[str, object] = {}
    if args.config is not None:
        document = read_config_document(args.config)  # its ConfigError is a ValueError
        webhooks = document.get("webhooks", {})
        if not isinstance(webhooks, dict):
            raise ValueError(f"{args.config}: [webhooks] must be a table")
        table.update(webhooks)
    if args.allow_host:
        table["allowed_hosts"] = list(args.allow_host)
    if args.retry_schedule:
        table["retry_schedule"] = [float(part) for part in args.retry_schedule.split(",")]
    for flag, key in (
        ("timeout", "timeout_seconds"),
        ("lease", "lease_seconds"),
        ("concurrency", "max_concurrency"),
        ("poll_interval", "poll_interval_seconds"),
    ):
        value = getattr(args, flag)
        if value is not None:
            table[key] = value
    return WebhookSettings.from_mapping(table)


async def _serve(db: Database, settings: WebhookSettings, box: SecretBox) -> None:
    dispatcher = Dispatcher(db, settings, box)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await dispatcher.start()
    print("webhook worker ready", file=sys.stderr, flush=True)
    await stop.wait()
    await dispatcher.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"webhook worker: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    db = Database(args.database_url)
    try:
        asyncio.run(_serve(db, settings, secret_box_for(settings, args.data_dir)))
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
