"""Webhook signature verification: shared vectors, properties, and the client namespace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runinfra import RunInfra, WebhookVerificationError, construct_webhook_event, verify_webhook_signature
from runinfra.webhooks import build_signature_header, compute_signature, parse_signature_header

VECTORS = json.loads((Path(__file__).parent / "webhook_vectors.json").read_text(encoding="utf-8"))["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["name"] for vector in VECTORS])
def test_vectors(vector: Dict[str, Any]) -> None:
    def verify() -> None:
        verify_webhook_signature(
            payload=vector["payload"].encode("utf-8"),
            signature_header=vector["header"],
            secret=vector["secret"],
            tolerance_seconds=vector["tolerance_seconds"],
            now=vector["now"],
        )

    if vector["valid"]:
        verify()
    else:
        with pytest.raises(WebhookVerificationError) as caught:
            verify()
        assert vector["secret"] not in str(caught.value)


def test_construct_event_parses_verified_json_only() -> None:
    secret = "whsec_x"
    body = b'{"id": "evt_1", "type": "credits.low"}'
    header = build_signature_header(body, secret)
    assert construct_webhook_event(payload=body, signature_header=header, secret=secret)["id"] == "evt_1"
    for bad in (b"not json", b"[1, 2]", b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(WebhookVerificationError):
            construct_webhook_event(payload=bad, signature_header=build_signature_header(bad, secret), secret=secret)
    with pytest.raises(WebhookVerificationError):
        construct_webhook_event(payload=body, signature_header=header, secret="whsec_wrong")


def test_client_namespace_and_bad_secrets() -> None:
    client = RunInfra(api_key="sk-x")
    body = '{"id": "e"}'
    header = build_signature_header(body, "s1", extra_secrets=("s2",))
    assert client.webhooks.verify_signature(body, header, "s2") is True
    assert verify_webhook_signature(payload=body, signature_header=header, secret="s1") is True
    assert client.webhooks.construct_event(body, header, "s1") == {"id": "e"}
    for secret in ("", "   ", None):
        with pytest.raises(WebhookVerificationError):
            verify_webhook_signature(body, header, secret)  # type: ignore[arg-type]
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(body, header, "s1", tolerance_seconds=-1)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(12, header, "s1")  # type: ignore[arg-type]


def test_non_ascii_signature_entries_do_not_crash() -> None:
    header = "t=1,v1=é"
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(b"x", header, "s", now=1)


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(
    timestamp=st.integers(min_value=0, max_value=10**12),
    signatures=st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), min_size=1, max_size=3),
    spaces=st.booleans(),
)
def test_header_parser_round_trips(timestamp: int, signatures: list, spaces: bool) -> None:
    separator = ", " if spaces else ","
    header = separator.join([f"t={timestamp}"] + [f"v1={s}" for s in signatures])
    assert parse_signature_header(header) == (timestamp, signatures)


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(st.text(max_size=120))
def test_header_parser_refuses_garbage_with_the_typed_error(header: str) -> None:
    try:
        timestamp, signatures = parse_signature_header(header)
    except WebhookVerificationError:
        return
    assert timestamp >= 0
    assert signatures


@settings(deadline=None)  # a shared CPU makes per-example deadlines flaky
@given(payload=st.binary(max_size=200), secret=st.text(min_size=1, max_size=20).filter(str.strip),
       timestamp=st.integers(min_value=0, max_value=2**40))  # fmt: skip
def test_built_headers_verify_and_tampering_fails(payload: bytes, secret: str, timestamp: int) -> None:
    header = build_signature_header(payload, secret, timestamp)
    verify_webhook_signature(payload, header, secret, now=timestamp)
    assert compute_signature(payload, secret, timestamp) in header
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(payload + b"!", header, secret, now=timestamp)


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), True, "300"])
def test_a_tolerance_that_would_disable_the_staleness_check_is_refused(tolerance: Any) -> None:
    # NaN compares false with everything, so a delivery from 1970 passed "abs(now - t) > nan".
    header = build_signature_header(b"{}", "s", 0)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(b"{}", header, "s", tolerance_seconds=tolerance, now=1_000_000_000)
    with pytest.raises(WebhookVerificationError):
        construct_webhook_event(b"{}", header, "s", tolerance_seconds=tolerance, now=1_000_000_000)
    with pytest.raises(WebhookVerificationError):
        verify_webhook_signature(b"{}", header, "s", now=float("nan"))


def test_text_that_is_not_utf8_is_the_typed_error_without_the_secret() -> None:
    # A str with a lone surrogate (a body decoded with surrogateescape) cannot be encoded: that must be
    # WebhookVerificationError, and no exception in the chain may hold the secret.
    secret = "whsec_\udcff_tail"
    header = build_signature_header(b"{}", "s", 0)
    for payload, key in (("{\udcff}", "s"), (b"{}", secret)):
        with pytest.raises(WebhookVerificationError) as caught:
            verify_webhook_signature(payload, header, key, now=0)
        assert caught.value.__context__ is None
        assert "whsec_" not in str(caught.value)
