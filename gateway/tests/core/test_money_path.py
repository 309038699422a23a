"""Credits, rate limits and idempotency on the request path (the money owner's modules, wired by core)."""

from __future__ import annotations

import time

from runinfra_gateway.testing import GatewayProcess

from .conftest import ObservingUpstream, admin, new_tenant

CHAT = {"model": "smollm2", "messages": [{"role": "user", "content": "Say yes"}], "max_tokens": 3}


def test_insufficient_credits_is_402_with_the_numbers(gateway: GatewayProcess) -> None:
    poor = new_tenant(gateway, credits_cents=0.0001)
    response = poor.post("/chat/completions", CHAT)
    assert response.status == 402
    error = response.error
    assert error["type"] == "insufficient_credits"
    assert error["current_balance_cents"] == 0.0001
    assert error["required_cents"] > 0.0001
    assert error["topup_url"].startswith("http")
    assert poor.balance()["balance_cents"] == 0.0001  # nothing held, nothing charged


def test_credits_run_out_midway(gateway: GatewayProcess) -> None:
    # Enough for the hold of a few small requests (estimate: prompt bytes + max_tokens), not many.
    tenant = new_tenant(gateway, credits_cents=0.02)  # about five requests of ~0.004 cents
    statuses = []
    for _ in range(12):
        statuses.append(tenant.post("/chat/completions", CHAT).status)
    assert 200 in statuses
    assert statuses[-1] == 402
    first_refusal = statuses.index(402)
    assert all(s == 200 for s in statuses[:first_refusal])
    balance = tenant.balance()
    assert balance["balance_cents"] >= 0
    assert balance["held_cents"] == 0


def test_rate_limit_is_429_with_retry_after(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway, requests_per_minute=2)
    assert tenant.get("/models").status == 200  # listing is not rate limited
    results = [tenant.post("/chat/completions", CHAT) for _ in range(3)]
    assert [r.status for r in results] == [200, 200, 429]
    limited = results[-1]
    assert limited.error["type"] == "rate_limit_error"
    assert int(limited.headers["retry-after"]) >= 1


def test_idempotent_replay_is_not_charged_again(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway)
    headers = {"Idempotency-Key": "replay-1"}
    first = tenant.post("/chat/completions", CHAT, headers=headers)
    assert first.status == 200
    after_first = tenant.balance()
    again = tenant.post("/chat/completions", CHAT, headers=headers)
    assert again.status == 200
    assert again.headers["x-runinfra-idempotent-replay"] == "true"
    assert again.body == first.body
    assert again.headers["x-runinfra-cost-microcents"] == first.headers["x-runinfra-cost-microcents"]
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert tenant.balance() == after_first
    reused = tenant.post("/chat/completions", {**CHAT, "max_tokens": 4}, headers=headers)
    assert reused.status == 422
    assert reused.error["type"] == "idempotency_key_reused"
    # Scoped to the key: another key may use the same Idempotency-Key freely.
    other = new_tenant(gateway)
    fresh = other.post("/chat/completions", CHAT, headers=headers)
    assert fresh.status == 200
    assert "x-runinfra-idempotent-replay" not in fresh.headers


def test_idempotent_stream_is_never_run_or_charged_twice(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway)
    headers = {"Idempotency-Key": "stream-1"}
    stream = {**CHAT, "stream": True}
    first = tenant.post("/chat/completions", stream, headers=headers)
    assert first.status == 200
    assert first.body.rstrip().endswith(b"data: [DONE]")
    after_first = tenant.balance()
    assert after_first["balance_cents"] < 100  # the stream was charged
    again = tenant.post("/chat/completions", stream, headers=headers)
    assert again.status == 409
    assert again.error["type"] == "idempotency_replay_unavailable"
    assert tenant.balance() == after_first
    # A different body under the same key is still a reused key, not a new stream.
    reused = tenant.post("/chat/completions", {**stream, "max_tokens": 4}, headers=headers)
    assert reused.status == 422
    assert reused.error["type"] == "idempotency_key_reused"
    assert tenant.balance() == after_first


def test_bad_idempotency_key_is_400(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway)
    response = tenant.post("/chat/completions", CHAT, headers={"Idempotency-Key": "x" * 256})
    assert response.status == 400
    assert response.error["param"] == "Idempotency-Key"


def test_topup_and_debit_never_below_zero(gateway: GatewayProcess) -> None:
    tenant = new_tenant(gateway, credits_cents=5)
    topped = admin(gateway, "POST", f"/workspaces/{tenant.workspace_id}/credits", {"cents": 2.5})
    assert topped.json()["balance_cents"] == 7.5
    debit = admin(gateway, "POST", f"/workspaces/{tenant.workspace_id}/credits", {"cents": -100})
    assert debit.status in (200, 400)
    assert tenant.balance()["balance_cents"] >= 0


def test_reported_cost_is_what_was_charged_when_the_balance_caps_it(
    slow_gateway: tuple[GatewayProcess, ObservingUpstream],
) -> None:
    gateway, _ = slow_gateway
    # The hold covers 37 tokens (36 input, max_tokens 1); the upstream reports 53 (1000 micro-cents each),
    # but the workspace only has 45,000 micro-cents: the ledger charges 45,000 and the balance ends at zero.
    tenant = new_tenant(gateway, credits_cents=0.045)
    response = tenant.post("/chat/completions", {"model": "slow", "max_tokens": 1,
                                                 "messages": [{"role": "user", "content": "fast-cap"}]})
    assert response.status == 200, response.body
    assert response.json()["usage"]["total_tokens"] == 53
    assert tenant.balance()["balance_cents"] == 0
    assert response.headers["x-runinfra-cost-microcents"] == "45000"
    deadline = time.monotonic() + 5
    while True:
        rows = admin(gateway, "GET", f"/requests?workspace_id={tenant.workspace_id}").json()["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert [row["cost_microcents"] for row in rows] == [45000]
