"""A gateway-shaped child process for the crash test: a burst of concurrent holds and settles until killed.

Usage: python ledger_child.py DATABASE_URL JOURNAL_PATH PREFIX [--open CENTS] [--idempotent]

Prints ``ready`` once started, then ``settled <request id> <charge>`` after each
settle returns and ``released <request id>`` after each release returns. Worker 0
takes its hold, prints ``stuck <request id>`` and never finishes: the kill always
finds at least that request in flight. With
``--idempotent`` every request carries its own Idempotency-Key and runs the way core
wires it (begin, hold, settle, complete), printing ``completed <key> <request id>
<charge>`` once ``complete`` returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import zlib
from pathlib import Path

from runinfra_gateway.billing import Ledger, Usage
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.idempotency import IdempotencyStore, StoredResponse
from runinfra_gateway.store import Database

WORKSPACE = "ws_crash"
HOLD = 500


def report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fingerprint(idempotency_key: str) -> bytes:
    return hashlib.sha256(idempotency_key.encode()).digest()


async def main(db_url: str, journal_path: str, prefix: str, open_cents: float | None, idempotent: bool) -> None:
    db = Database(db_url)
    ledger = Ledger(
        db,
        journal_path=Path(journal_path),
        topup_url="https://gateway.example/topup",
        flush_interval_seconds=0.02,
        batch_size=64,
        journal_segment_bytes=8192,
    )
    await ledger.start()
    idempotency = IdempotencyStore(db)
    if open_cents is not None:
        await ledger.open_account(WORKSPACE, open_cents)
    report("ready")

    async def worker(number: int) -> None:
        sequence = 0
        while True:
            sequence += 1
            request_id = f"{prefix}-{number}-{sequence}"
            idempotency_key = f"key-{request_id}"
            if idempotent:
                key_fingerprint = fingerprint(idempotency_key)
                await idempotency.begin("key_crash", idempotency_key, key_fingerprint, request_id=request_id)
            try:
                hold = await ledger.hold(WORKSPACE, HOLD, request_id=request_id)
            except GatewayError:
                if idempotent:
                    await idempotency.abandon("key_crash", idempotency_key)
                await asyncio.sleep(0.01)
                continue
            if number == 0:
                # A request still in the backend when the gateway dies, whatever the timing of the kill.
                report(f"stuck {request_id}")
                await asyncio.sleep(3600)
            # Other requests run while this one is "in the backend"; uneven delays keep the
            # workers out of lockstep, so the kill lands between every pair of steps.
            await asyncio.sleep(0.01 * (number % 6) if idempotent else 0)
            if sequence % 7 == 0:
                await ledger.release(hold)
                if idempotent:
                    await idempotency.abandon("key_crash", idempotency_key)
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
            if idempotent:
                response = StoredResponse(200, (("x-runinfra-cost-microcents", str(charged)),), request_id.encode())
                await idempotency.complete("key_crash", idempotency_key, response)
                report(f"completed {idempotency_key} {request_id} {charged}")

    await asyncio.gather(*(worker(number) for number in range(32)))


if __name__ == "__main__":
    options = sys.argv[4:]
    opening = float(options[options.index("--open") + 1]) if "--open" in options else None
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], opening, "--idempotent" in options))
