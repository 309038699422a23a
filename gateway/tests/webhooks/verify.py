"""Verify received deliveries with our SDK (in-process) and the published runinfra==0.2.0 (subprocess)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import runinfra

from .receiver import Received

__all__ = ["PEER_PYTHON", "verify_with_peer", "verify_with_sdk"]

REPO = Path(__file__).resolve().parents[3]
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"

# Runs under the published package's interpreter; only its public helper is called.
_PEER_SCRIPT = """
import base64, json, sys
from runinfra import construct_webhook_event
results = []
for item in json.load(sys.stdin):
    try:
        event = construct_webhook_event(
            payload=base64.b64decode(item["payload"]),
            signature_header=item["header"],
            secret=item["secret"],
        )
        results.append({"ok": True, "event": json.loads(json.dumps(event, default=dict))})
    except Exception as exc:
        results.append({"ok": False, "error": type(exc).__name__})
json.dump(results, sys.stdout)
"""


def verify_with_sdk(received: Received, secret: str) -> dict[str, Any]:
    """Our SDK's ``construct_webhook_event`` over the exact raw body and header received."""
    event = runinfra.construct_webhook_event(
        payload=received.body, signature_header=received.headers["runinfra-signature"], secret=secret
    )
    return dict(event)


def verify_with_peer(items: list[tuple[Received, str]]) -> list[dict[str, Any]]:
    """The published package's helper over each (delivery, secret); one subprocess for the batch."""
    request = [
        {
            "payload": base64.b64encode(r.body).decode(),
            "header": r.headers["runinfra-signature"],
            "secret": secret,
        }
        for r, secret in items
    ]
    done = subprocess.run(
        [str(PEER_PYTHON), "-c", _PEER_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        # Never our own runinfra: not from the working directory, not from PYTHONPATH.
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
