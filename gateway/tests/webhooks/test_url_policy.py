"""SSRF defence: which endpoint URLs are refused at registration and at every delivery."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import orjson
import pytest
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.store import Database
from runinfra_gateway.webhooks.events import new_id
from runinfra_gateway.webhooks.models import WebhookAttempt, WebhookEndpoint
from runinfra_gateway.webhooks.secret_box import SecretBox, new_signing_secret
from runinfra_gateway.webhooks.service import WebhookService
from runinfra_gateway.webhooks.settings import WebhookSettings
from runinfra_gateway.webhooks.url_policy import UrlRefused, check_address, parse_endpoint_url, resolve_checked
from sqlalchemy import func, select

from .conftest import FAST, WORKSPACE
from .helpers import dispatching, enqueue, wait_until
from .receiver import Receiver

STRICT = WebhookSettings()  # nothing allowed: what production starts with


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.5/hook", "private"),
        ("https://10.255.255.255:8443/hook", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://172.16.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[fd00::1]/hook", "private"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://224.0.0.1/hook", "multicast"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://240.0.0.1/hook", "reserved"),
        ("https://100.64.0.1/hook", "not globally routable"),
        ("http://example.com/hook", "must be https"),
        ("http://8.8.8.8/hook", "must be https"),
        ("https://user:pass@example.com/hook", "user info"),
        ("https://user@example.com/hook", "user info"),
        ("ftp://example.com/hook", "scheme must be https"),
        ("file:///etc/passwd", "scheme must be https"),
        ("https:///nohost", "no host"),
        ("https://example.com/hook#frag", "fragment"),
        ("https://exa mple.com/", "ASCII without spaces"),
        ("https://example.com:99999/", "malformed"),
        ("https://bücher.example/", "ASCII"),
        ("", "non-empty"),
        ("https://example.com/" + "a" * 2100, "longer than"),
    ],
)
def test_refused_urls(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused, match=reason):
        parse_endpoint_url(url, STRICT)


def test_public_https_url_is_accepted() -> None:
    parsed = parse_endpoint_url("https://hooks.example.com:8443/runinfra?x=1", STRICT)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.host_allowed) == ("https", "hooks.example.com", 8443, False)
    assert parse_endpoint_url("https://93.184.216.34/hook", STRICT).port == 443


def test_loopback_only_when_the_operator_allows_that_host() -> None:
    allowed = WebhookSettings(allowed_hosts=frozenset({"127.0.0.1"}))
    assert parse_endpoint_url("http://127.0.0.1:9000/hook", allowed).host_allowed
    with pytest.raises(UrlRefused, match="must be https"):
        parse_endpoint_url("http://[::1]:9000/hook", allowed)
    with pytest.raises(UrlRefused, match="loopback"):
        parse_endpoint_url("https://[::1]:9000/hook", allowed)
    with pytest.raises(UrlRefused, match="must be https"):
        parse_endpoint_url("http://localhost:9000/hook", allowed)


def test_allowed_networks_admit_private_https() -> None:
    settings = WebhookSettings.from_mapping({"allowed_networks": ["10.0.0.0/8"]})
    check_address(ipaddress.ip_address("10.1.2.3"), settings)
    with pytest.raises(UrlRefused):
        check_address(ipaddress.ip_address("192.168.0.1"), settings)


def test_every_resolved_address_is_checked() -> None:
    async def scenario() -> None:
        # localhost resolves to loopback; a name is refused if ANY address is non-public.
        with pytest.raises(UrlRefused, match="loopback"):
            await resolve_checked("localhost", 443, STRICT)
        # A decimal IPv4 literal is resolved by getaddrinfo to 127.0.0.1: still refused.
        with pytest.raises(UrlRefused, match="loopback"):
            await resolve_checked("2130706433", 443, STRICT)
        results = await resolve_checked("localhost", 443, WebhookSettings(allowed_hosts=frozenset({"localhost"})))
        assert results
        assert all(ipaddress.ip_address(r["host"]).is_loopback for r in results)

    asyncio.run(scenario())


def test_registration_refuses_names_resolving_to_private_addresses(db: Database, box: SecretBox) -> None:
    service = WebhookService(db, STRICT, box)

    async def scenario() -> None:
        for url in (
            "https://localhost/hook",
            "https://2130706433/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/",
            "https://[::1]/hook",
            "http://example.com/hook",
            "https://u:p@example.com/",
        ):
            with pytest.raises(GatewayError) as caught:
                await service.create_endpoint(workspace_id=WORKSPACE, url=url)
            assert caught.value.status == 400
            assert caught.value.param == "url"
            assert caught.value.message.startswith("Webhook URL refused:")
        assert await service.list_endpoints() == []

    asyncio.run(scenario())


def test_delivery_time_resolution_is_checked_and_connected_to(
    db: Database, box: SecretBox, receiver: Receiver
) -> None:
    """A name that passed registration but now resolves to loopback (DNS rebinding) is never reached."""
    rebinding_url = f"https://localhost:{receiver.port}/ok"
    with db.session() as session:
        endpoint_id = new_id("we")
        session.add(
            WebhookEndpoint(
                id=endpoint_id,
                workspace_id=WORKSPACE,
                url=rebinding_url,
                description="",
                event_types=orjson.dumps(["*"]).decode(),
                secret_sealed=box.seal(new_signing_secret(), endpoint_id=endpoint_id),
                enabled=True,
                created_at=time.time(),
                updated_at=time.time(),
            )
        )
    service = WebhookService(db, FAST, box)

    async def scenario() -> None:
        enqueue(db, "key.created", {"key_id": "k"})
        async with dispatching(db, box):
            await wait_until(lambda: _attempted(db) == FAST.max_attempts, what="every attempt")
        (delivery,) = await service.list_deliveries(endpoint_id=endpoint_id)
        assert delivery["state"] == "failed"
        assert [a["status"] for a in delivery["attempt_log"]] == [None, None, None]
        assert all("refused by URL policy" in a["error"] and "loopback" in a["error"] for a in delivery["attempt_log"])
        assert receiver.received == []

    asyncio.run(scenario())


def test_allow_list_change_applies_to_pending_deliveries(db: Database, box: SecretBox, receiver: Receiver) -> None:
    """An endpoint registered while its host was allowed is refused once the operator removes it."""

    async def scenario() -> None:
        endpoint = await WebhookService(db, FAST, box).create_endpoint(workspace_id=WORKSPACE, url=receiver.url("/ok"))
        enqueue(db, "key.created", {"key_id": "k"})
        strict = WebhookSettings(retry_schedule=(0,), poll_interval_seconds=0.05, timeout_seconds=1, lease_seconds=3)
        service = WebhookService(db, strict, box)
        async with dispatching(db, box, strict):
            await wait_until(lambda: _attempted(db) == 1, what="the refused attempt")
        (delivery,) = await service.list_deliveries(endpoint_id=endpoint.id)
        assert "must be https" in delivery["attempt_log"][0]["error"]
        assert receiver.received == []

    asyncio.run(scenario())


def _attempted(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0)
