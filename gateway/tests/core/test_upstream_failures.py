"""Upstream trouble as the client sees it: 5xx ``deployment_error`` with nothing charged; a finished answer
too large to replay is never run or charged again (409 ``idempotency_replay_unavailable``)."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, ObservingUpstream, Response, new_tenant, request


def _gateway(tmp_path: Path, upstream: ObservingUpstream, max_replay_bytes: int = 1_000_000) -> GatewayProcess:
    return GatewayProcess(tmp_path, admin_token=ADMIN_TOKEN, config={
        "server": {"idempotency_max_replay_bytes": max_replay_bytes},
        "deployments": [{
            "id": "cue", "backend": "upstream", "base_url": upstream.base_url,
            "operations": ["chat.completions", "images.generate"],
            "prices": {"input_per_1k_tokens": 1, "output_per_1k_tokens": 1, "per_image": 1},
        }],
    }).start()


def test_replay_unavailable_and_upstream_gone(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()
    gateway = _gateway(tmp_path, upstream, max_replay_bytes=100)
    try:
        tenant = new_tenant(gateway, credits_cents=10)
        body = {"model": "cue", "messages": [{"role": "user", "content": "fast answer"}]}
        first = tenant.post("/chat/completions", body, headers={"Idempotency-Key": "big-1"})
        assert first.status == 200
        assert len(first.body) > 100
        charged = tenant.balance()
        again = tenant.post("/chat/completions", body, headers={"Idempotency-Key": "big-1"})
        assert again.status == 409
        assert again.error["type"] == "idempotency_replay_unavailable"
        assert tenant.balance() == charged

        upstream.stop()
        statuses = []
        for _ in range(2):
            failed = tenant.post("/chat/completions", body)
            assert failed.error["type"] == "deployment_error"
            assert failed.headers["x-request-id"]
            if failed.status == 503:
                assert int(failed.headers["retry-after"]) >= 1
            statuses.append(failed.status)
        assert all(status in (502, 503) for status in statuses)
        assert tenant.balance() == charged  # failures are not charged, holds released
    finally:
        gateway.stop()
        upstream.stop()


def test_idempotency_key_in_flight_is_409_until_the_first_finishes(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()
    gateway = _gateway(tmp_path, upstream)
    try:
        tenant = new_tenant(gateway, credits_cents=10)
        body = {"model": "cue", "messages": [{"role": "user", "content": "held-open"}]}
        results: list[Response] = []
        first = threading.Thread(
            target=lambda: results.append(tenant.post("/chat/completions", body, headers={"Idempotency-Key": "k1"}))
        )
        first.start()
        deadline = time.monotonic() + 10
        while "held-open" not in upstream.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "held-open" in upstream.started  # the engine is working on the first call
        second = tenant.post("/chat/completions", body, headers={"Idempotency-Key": "k1"})
        assert second.status == 409
        assert second.error["type"] == "idempotency_key_in_use"
        other_body = tenant.post("/chat/completions", {**body, "max_tokens": 5}, headers={"Idempotency-Key": "k1"})
        assert other_body.status == 422
        upstream.release()  # the engine answers the first call now
        first.join(30)
        assert results[0].status == 200
        replay = tenant.post("/chat/completions", body, headers={"Idempotency-Key": "k1"})
        assert replay.headers["x-runinfra-idempotent-replay"] == "true"
        assert replay.body == results[0].body
    finally:
        gateway.stop()
        upstream.stop()


def test_upstream_images_inline_as_urls_and_undecodable(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()
    gateway = _gateway(tmp_path, upstream)
    try:
        tenant = new_tenant(gateway, credits_cents=10)
        inline = tenant.post("/images/generations", {"model": "cue", "prompt": "a cat", "n": 2,
                                                     "response_format": "b64_json"})
        assert inline.status == 200, inline.body
        assert inline.json() == {"created": 7, "data": [{"b64_json": upstream.image_b64}] * 2}
        linked = tenant.post("/images/generations", {"model": "cue", "prompt": "a cat"})
        assert linked.status == 200, linked.body
        url = urlsplit(linked.json()["data"][0]["url"])
        png = request(gateway.base_url, "GET", url.path)
        assert (png.status, png.headers["content-type"]) == (200, "image/png")
        assert png.body == base64.b64decode(upstream.image_b64)
        charged = tenant.balance()

        upstream.image_b64 = "not base64!"
        broken = tenant.post("/images/generations", {"model": "cue", "prompt": "a cat"})
        assert (broken.status, broken.error["type"]) == (502, "deployment_error")
        assert "undecodable image data" in broken.error["message"]
        assert tenant.balance() == charged  # a failed call is not charged
    finally:
        gateway.stop()
        upstream.stop()
