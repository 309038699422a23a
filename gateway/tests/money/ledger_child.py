"""A gateway-shaped child process for the crash test: a burst of concurrent holds and settles until killed.

Usage: python ledger_child.py DB_PATH JOURNAL_PATH PREFIX [--open CENTS]

Prints ``ready`` once started, then ``settled <request id> <charge>`` after each
settle returns and ``released <request id>`` after each release returns.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from pathlib import Path

from runinfra_gateway.billing import Ledger, Usage
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.store import Database

WORKSPACE = "ws_crash"
HOLD = 500


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(db_path: str, journal_path: str, prefix: str, open_cents: float | None) -> None:
    db = Database(f"sqlite:///{db_path}")
    ledger = Ledger(
        db,
        journal_path=Path(journal_path),
        topup_url="https://gateway.example/topup",
        flush_interval_seconds=0.02,
        batch_size=64,
        journal_segment_bytes=8192,
    )
    await ledger.start()
    if open_cents is not None:
        await ledger.open_account(WORKSPACE, open_cents)
    report("ready")

    async def worker(number: int) -> None:
        sequence = 0
        while True:
            sequence += 1
            request_id = f"{prefix}-{number}-{sequence}"
            try:
                hold = await ledger.hold(WORKSPACE, HOLD, request_id=request_id)
            except GatewayError:
                await asyncio.sleep(0.01)
                continue
            await asyncio.sleep(0)  # other requests run while this one is "in the backend"
            if sequence % 7 == 0:
                await ledger.release(hold)
                report(f"released {request_id}")
                continue
            actual = 1 + zlib.crc32(request_id.encode()) % HOLD
            charged = await ledger.settle(
                hold,
                actual,
                request_id=request_id,
                key_id="key_crash",
                deployment_id="dep",
                operation="chat.completions",
                usage=Usage(input_tokens=actual),
                status=200,
            )
            report(f"settled {request_id} {charged}")

    await asyncio.gather(*(worker(number) for number in range(32)))


if __name__ == "__main__":
    opening = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--open" else None
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], opening))
