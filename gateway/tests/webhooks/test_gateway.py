"""Webhooks through a real ``runinfra serve``: the admin routes, the ``runinfra webhooks`` CLI, the core's events.

The gateway runs as a child process with a ``[webhooks]`` config table; every
delivery reaches the real receiver and is verified with our SDK and the
published runinfra==0.2.0. The gateway is also killed (-9) mid-dispatch and
restarted on the same data directory.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runinfra_gateway.testing import GatewayProcess

from .helpers import wait_until_sync
from .receiver import Receiver
from .verify import verify_with_peer, verify_with_sdk

ADMIN_TOKEN = "ria_test_" + secrets.token_urlsafe(24)
RUNINFRA = str(Path(sys.executable).with_name("runinfra"))


def _config(**webhooks: Any) -> dict[str, Any]:
    return {
        "workspaces": [{"id": "main", "name": "Main", "credits_cents": 100}],
        "deployments": [],
        "webhooks": {
            "allowed_hosts": ["127.0.0.1"],
            "retry_schedule": [0, 0.2, 0.2, 0.2],
            "jitter_fraction": 0,
            "timeout_seconds": 2,
            "lease_seconds": 3,
            "poll_interval_seconds": 0.05,
            **webhooks,
        },
    }


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gateway", config=_config(), admin_token=ADMIN_TOKEN).start()
    yield process
    process.stop()


def cli(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNINFRA, "webhooks", *args, "--base-url", gateway.base_url, "--admin-token", ADMIN_TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_json(gateway: GatewayProcess, *args: str) -> Any:
    done = cli(gateway, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def admin(gateway: GatewayProcess, method: str, path: str, body: Any = None, *, token: str = ADMIN_TOKEN,
          raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(gateway.base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    try:
        connection.request(method, "/admin/v1" + path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_core_events_cli_and_admin_routes(gateway: GatewayProcess, receiver: Receiver) -> None:
    # Not usage.daily: the gateway would summarise yesterday on its own schedule mid-test.
    created = cli_json(gateway, "create", "--workspace", "main", "--url", receiver.url("/ok"),
                       "--description", "ci receiver", "--events", "key.created,key.revoked,webhook.test")
    secret = created["secret"]
    endpoint_id = created["id"]
    assert secret.startswith("whsec_")
    assert created["events"] == ["key.created", "key.revoked", "webhook.test"]

    # The core's change points write the events in their own transactions.
    status, key = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": "main", "name": "hooked"})
    assert status == 201
    wait_until_sync(lambda: len(receiver.received) == 1, what="key.created")
    status, _ = admin(gateway, "DELETE", f"/keys/{key['id']}")
    assert status == 200
    wait_until_sync(lambda: len(receiver.received) == 2, what="key.revoked")
    events = [verify_with_sdk(r, secret) for r in receiver.received]
    assert [(e["type"], e["data"]["key_id"]) for e in events] == [
        ("key.created", key["id"]),
        ("key.revoked", key["id"]),
    ]
    assert key["secret"] not in json.dumps(events)
    assert all(p["ok"] for p in verify_with_peer([(r, secret) for r in receiver.received]))

    done = cli(gateway, "test", endpoint_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("queued delivery whd_")
    wait_until_sync(lambda: len(receiver.received) == 3, what="webhook.test")
    assert verify_with_sdk(receiver.received[2], secret)["type"] == "webhook.test"

    log = cli(gateway, "deliveries", "--endpoint", endpoint_id)
    assert log.returncode == 0, log.stderr
    assert log.stdout.count("delivered") >= 3
    assert "200" in log.stdout

    replayed = cli_json(gateway, "replay", events[0]["id"])
    assert [d["origin"] for d in replayed["data"]] == ["replay"]
    wait_until_sync(lambda: len(receiver.received) == 4, what="the replay")
    assert receiver.received[3].body == receiver.received[0].body

    rotated = cli_json(gateway, "rotate", endpoint_id, "--overlap-seconds", "60")
    new_secret = rotated["secret"]
    assert new_secret != secret
    assert rotated["previous_secret_expires"] > time.time()
    cli_json(gateway, "test", endpoint_id)
    wait_until_sync(lambda: len(receiver.received) == 5, what="a delivery during the overlap")
    during = receiver.received[4]
    assert during.headers["runinfra-signature"].count("v1=") == 2
    assert verify_with_sdk(during, secret)["id"] == verify_with_sdk(during, new_secret)["id"]

    # A deployment that fails verification: deployment.failed for every subscribed workspace.
    failing = cli_json(gateway, "create", "--workspace", "main", "--url", receiver.url("/ok"),
                       "--events", "deployment.failed,deployment.verified")
    status, _ = admin(gateway, "POST", "/deployments", {
        "id": "nowhere", "backend": "upstream", "base_url": "http://127.0.0.1:9/v1", "operations": ["embeddings"],
    })
    assert status in (200, 201), _
    wait_until_sync(lambda: len(receiver.received) == 6, what="deployment.failed")
    failed = verify_with_sdk(receiver.received[5], failing["secret"])
    assert (failed["type"], failed["workspace"], failed["data"]["deployment_id"]) == (
        "deployment.failed", "main", "nowhere",
    )
    assert failed["data"]["error"]

    assert cli_json(gateway, "disable", endpoint_id)["enabled"] is False
    assert cli_json(gateway, "disable", failing["id"])["enabled"] is False
    admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": "main"})
    time.sleep(0.4)
    assert len(receiver.received) == 6
    assert cli_json(gateway, "enable", endpoint_id)["enabled"] is True

    listing = cli_json(gateway, "list", "--workspace", "main")
    assert [e["id"] for e in listing["data"]] == [endpoint_id, failing["id"]]
    assert "secret" not in listing["data"][0]
    text_listing = cli(gateway, "list")
    assert endpoint_id in text_listing.stdout
    renamed = cli_json(gateway, "update", failing["id"], "--events", "key.created", "--description", "renamed")
    assert (renamed["events"], renamed["description"], renamed["url"]) == (["key.created"], "renamed", failing["url"])
    assert "secret" not in renamed
    nothing = cli(gateway, "update", failing["id"])
    assert nothing.returncode == 1
    assert "Give at least one of url, events, description" in nothing.stderr
    deleted = cli(gateway, "delete", failing["id"])
    assert (deleted.returncode, deleted.stdout) == (0, f"deleted endpoint {failing['id']} and its delivery log\n")
    assert [e["id"] for e in cli_json(gateway, "list", "--workspace", "main")["data"]] == [endpoint_id]
    assert cli_json(gateway, "deliveries", "--endpoint", failing["id"])["data"] == []
    again = cli(gateway, "delete", failing["id"])
    assert again.returncode == 1
    assert f"No webhook endpoint with id {failing['id']!r}" in again.stderr
    attempts = [json.loads(line) for line in gateway.stderr().splitlines() if '"webhook_attempt"' in line]
    assert len(attempts) >= 5
    assert {a["outcome"] for a in attempts} == {"delivered"}
    assert {"delivery", "event_id", "type", "endpoint", "attempt", "status", "latency_ms", "error"} <= set(attempts[0])
    for leaked in (secret, new_secret, failing["secret"]):
        assert leaked not in text_listing.stdout
        assert leaked not in gateway.stdout()
        assert leaked not in gateway.stderr()


def test_admin_routes_refuse_bad_input(gateway: GatewayProcess, receiver: Receiver) -> None:
    assert admin(gateway, "GET", "/webhooks/endpoints", token="wrong")[0] == 401
    status, key = admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": "main"})
    status, body = admin(gateway, "GET", "/webhooks/endpoints", token=key["secret"])
    assert (status, body["error"]["type"]) == (403, "permission_denied")

    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"workspace_id": "main", "url": "https://10.0.0.1/hook"}, 400, "url"),
        ({"workspace_id": "main", "url": "https://169.254.169.254/"}, 400, "url"),
        ({"workspace_id": "main", "url": "http://localhost:9/hook"}, 400, "url"),
        ({"workspace_id": "main", "url": "https://u:p@example.com/"}, 400, "url"),
        ({"workspace_id": "main", "url": "https://[::1]/"}, 400, "url"),
        ({"workspace_id": "main", "url": receiver.url("/ok"), "events": ["nope"]}, 400, "events"),
        ({"workspace_id": "main", "url": receiver.url("/ok"), "events": "key.created"}, 400, "events"),
        ({"workspace_id": "main", "url": receiver.url("/ok"), "secret": "mine"}, 400, "secret"),
        ({"workspace_id": "main", "url": 42}, 400, "url"),
        ({"workspace_id": "main"}, 400, "url"),
        ({"workspace_id": "nope", "url": receiver.url("/ok")}, 404, None),
        ({"url": receiver.url("/ok")}, 400, "workspace_id"),
    ]
    for body, expected, param in cases:
        status, answer = admin(gateway, "POST", "/webhooks/endpoints", body)
        assert status == expected, (body, answer)
        assert answer["error"]["param"] == param, (body, answer)
    status, answer = admin(gateway, "POST", "/webhooks/endpoints", raw=b"{not json")
    assert (status, answer["error"]["code"]) == (400, "invalid_json")
    status, created = admin(gateway, "POST", "/webhooks/endpoints",
                            {"workspace_id": "main", "url": receiver.url("/ok")})
    assert status == 201, created
    path = f"/webhooks/endpoints/{created['id']}"
    for raw, code, param in ((b"{not json", "invalid_json", None), (b"[]", "invalid_json", None),
                             (b'{"workspace_id": "other"}', "unsupported_parameter", "workspace_id"),
                             (b'{"url": "https://169.254.169.254/"}', "invalid_value", "url")):
        status, answer = admin(gateway, "PATCH", path, raw=raw)
        assert (status, answer["error"]["code"], answer["error"]["param"]) == (400, code, param), raw
    status, answer = admin(gateway, "PATCH", "/webhooks/endpoints/we_nope", {"description": "x"})
    assert status == 404
    assert admin(gateway, "GET", path)[1]["url"] == receiver.url("/ok")
    assert admin(gateway, "DELETE", path)[0] == 200
    assert admin(gateway, "DELETE", path)[0] == 404
    status, answer = admin(gateway, "POST", "/webhooks/endpoints", raw=b"[]")
    assert status == 400
    status, answer = admin(gateway, "POST", "/webhooks/endpoints", raw=b"x" * (1024 * 1024 + 1))
    assert (status, answer["error"]["code"]) == (413, "request_too_large")
    status, answer = admin(gateway, "POST", "/webhooks/endpoints", raw=b"{}", content_type="text/plain")
    assert status == 400

    assert admin(gateway, "GET", "/webhooks/endpoints/we_missing")[0] == 404
    assert admin(gateway, "POST", "/webhooks/endpoints/we_missing/rotate")[0] == 404
    assert admin(gateway, "POST", "/webhooks/events/evt_missing/replay")[0] == 404
    assert admin(gateway, "GET", "/webhooks/deliveries?limit=abc")[0] == 400
    assert admin(gateway, "GET", "/webhooks/deliveries?limit=%C2%B2")[0] == 400  # "²" passes str.isdigit()
    assert admin(gateway, "GET", "/webhooks/deliveries?limit=100000")[0] == 400
    status, created = admin(
        gateway, "POST", "/webhooks/endpoints", {"workspace_id": "main", "url": receiver.url("/ok")}
    )
    assert status == 201
    for overlap in (-1, "soon", 10**9, True):
        status, answer = admin(gateway, "POST", f"/webhooks/endpoints/{created['id']}/rotate",
                               {"overlap_seconds": overlap})
        assert (status, answer["error"]["param"]) == (400, "overlap_seconds")
    status, answer = admin(gateway, "PUT", "/webhooks/workspaces/main/credits-low-threshold", {"cents": -5})
    assert (status, answer["error"]["param"]) == (400, "cents")
    status, answer = admin(gateway, "PUT", "/webhooks/workspaces/main/credits-low-threshold", {"cents": 25})
    assert (status, answer["credits_low_threshold_cents"]) == (200, 25.0)

    failed = cli(gateway, "create", "--workspace", "main", "--url", "https://10.1.2.3/x")
    assert failed.returncode == 1
    assert "Webhook URL refused" in failed.stderr
    assert "private" in failed.stderr


def test_gateway_killed_mid_dispatch_delivers_after_restart(tmp_path: Path, receiver: Receiver) -> None:
    gateway = GatewayProcess(tmp_path / "gateway", config=_config(), admin_token=ADMIN_TOKEN).start()
    try:
        created = cli_json(gateway, "create", "--workspace", "main", "--url", receiver.url("/slow/1"),
                           "--events", "key.created")
        for _ in range(3):
            assert admin(gateway, "POST", "/keys", {"scope": "workspace", "workspace_id": "main"})[0] == 201
        wait_until_sync(lambda: receiver.in_flight >= 1, what="a delivery in flight")
        gateway.kill()
        gateway.start()
        wait_until_sync(lambda: len({json.loads(r.body)["id"] for r in receiver.received}) == 3
                        and receiver.in_flight == 0, what="every event after the restart", timeout=30)
        deliveries = cli_json(gateway, "deliveries")["data"]
        wait_until_sync(lambda: all(d["state"] == "delivered" for d in cli_json(gateway, "deliveries")["data"]),
                        what="the deliveries recorded", timeout=10)
    finally:
        gateway.stop()
    assert len(deliveries) == 3
    by_id: dict[str, set[bytes]] = {}
    for received in receiver.received:
        by_id.setdefault(verify_with_sdk(received, created["secret"])["id"], set()).add(received.body)
    assert len(by_id) == 3
    assert all(len(bodies) == 1 for bodies in by_id.values())
    assert len(receiver.received) > 3  # the attempt cut off by the kill was sent again, same id
