"""The sender against the SDK's shared test vectors (sdk/tests/webhook_vectors.json).

Every vector whose signature verifies must carry, among its ``v1=`` entries,
exactly what :func:`signature` computes for its secret, timestamp and payload;
every vector that fails on the signature must not. Canonical headers (no
spaces, no other schemes, one secret) are reproduced byte for byte by
:func:`sign`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runinfra_gateway.webhooks.signing import sign, signature

VECTORS_PATH = Path(__file__).resolve().parents[3] / "sdk" / "tests" / "webhook_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))["vectors"]


def _parts(header: str) -> tuple[int, list[str]]:
    items = [item.strip().split("=", 1) for item in header.split(",")]
    (timestamp,) = [int(value) for key, value in items if key == "t"]
    return timestamp, [value for key, value in items if key == "v1"]


def test_the_vectors_cover_both_outcomes() -> None:
    assert any(v["valid"] for v in VECTORS)
    assert any(v.get("error") == "signature" for v in VECTORS)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["valid"]], ids=lambda v: v["name"])
def test_valid_vectors_carry_our_signature(vector: dict[str, Any]) -> None:
    timestamp, v1 = _parts(vector["header"])
    payload = vector["payload"].encode("utf-8")
    assert signature(vector["secret"], timestamp, payload) in v1
    canonical = "," not in vector["header"].replace(",v1=", "") and " " not in vector["header"]
    if canonical and len(v1) == 1:
        assert sign(vector["secret"], timestamp, payload) == vector["header"]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v.get("error") == "signature"], ids=lambda v: v["name"]
)
def test_signature_failures_do_not_carry_our_signature(vector: dict[str, Any]) -> None:
    timestamp, v1 = _parts(vector["header"])
    assert signature(vector["secret"], timestamp, vector["payload"].encode("utf-8")) not in v1
