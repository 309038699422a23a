"""Upstream trouble as the client sees it: 5xx ``deployment_error`` with nothing charged; a finished answer
too large to replay is never run or charged again (409 ``idempotency_replay_unavailable``)."""

from __future__ import annotations

from pathlib import Path

from runinfra_gateway.testing import GatewayProcess

from .conftest import ADMIN_TOKEN, ObservingUpstream, new_tenant


def _gateway(tmp_path: Path, upstream: ObservingUpstream) -> GatewayProcess:
    return GatewayProcess(tmp_path, admin_token=ADMIN_TOKEN, config={
        "server": {"idempotency_max_replay_bytes": 100},
        "deployments": [{
            "id": "cue", "backend": "upstream", "base_url": upstream.base_url, "operations": ["chat.completions"],
            "prices": {"input_per_1k_tokens": 1, "output_per_1k_tokens": 1},
        }],
    }).start()


def test_replay_unavailable_and_upstream_gone(tmp_path: Path) -> None:
    upstream = ObservingUpstream().start()
    gateway = _gateway(tmp_path, upstream)
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
