"""Which endpoint URLs the gateway may call (SSRF defence).

An endpoint URL must be ``https://``, without user info, and every address its
host resolves to must be public. Hosts the operator lists in
``webhooks.allowed_hosts`` (loopback for development) may use ``http://`` and
resolve anywhere; ``webhooks.allowed_networks`` admits private networks for
``https://`` endpoints. The check runs when an endpoint is registered and again
at every delivery, inside the HTTP client's resolver, so the addresses checked
are the addresses connected to: a name that re-resolves elsewhere between the
check and the connection (DNS rebinding) is never reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from runinfra_gateway.webhooks.settings import WebhookSettings, normalize_host

__all__ = ["CheckedResolver", "EndpointUrl", "UrlRefused", "check_address", "parse_endpoint_url", "resolve_checked"]

MAX_URL_LENGTH = 2_048


class UrlRefused(ValueError):
    """The URL or an address its host resolves to is not allowed as a webhook target."""


@dataclass(frozen=True)
class EndpointUrl:
    """A syntactically valid endpoint URL and the host it names."""

    url: str
    scheme: str
    host: str
    port: int
    host_allowed: bool  # listed in webhooks.allowed_hosts


def parse_endpoint_url(url: str, settings: WebhookSettings) -> EndpointUrl:
    """Check the URL's form (scheme, user info, host, port) and any IP-literal host."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"url is longer than {MAX_URL_LENGTH} characters")
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise UrlRefused("url must be ASCII without spaces or control characters (IDNA-encode the host)")
    try:
        parts: SplitResult = urlsplit(url)
        port_number = parts.port
    except ValueError as exc:
        raise UrlRefused(f"url is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("url scheme must be https")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise UrlRefused("url must not contain user info (user:password@)")
    if parts.fragment:
        raise UrlRefused("url must not contain a fragment")
    host = normalize_host(parts.hostname or "")
    if not host:
        raise UrlRefused("url has no host")
    host_allowed = host in settings.allowed_hosts
    if scheme == "http" and not host_allowed:
        raise UrlRefused(f"url must be https (http only for hosts in webhooks.allowed_hosts; {host!r} is not)")
    port = port_number if port_number is not None else (443 if scheme == "https" else 80)
    literal = _ip_literal(host)
    if literal is not None and not host_allowed:
        check_address(literal, settings)
    return EndpointUrl(url=url, scheme=scheme, host=host, port=port, host_allowed=host_allowed)


def check_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, settings: WebhookSettings) -> None:
    """Refuse loopback, private, link-local, multicast, reserved and other non-public addresses."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in settings.allowed_networks):
        return
    kind = _non_public_kind(address)
    if kind is not None:
        raise UrlRefused(f"address {address} is {kind} and not allowed for webhooks")


def _non_public_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


async def resolve_checked(
    host: str, port: int, settings: WebhookSettings, family: int = socket.AF_UNSPEC
) -> list[ResolveResult]:
    """Resolve ``host`` and check every address; the results are what may be connected to."""
    host = normalize_host(host)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OSError(f"could not resolve {host!r}: {exc.strerror}") from None
    if not infos:
        raise OSError(f"{host!r} resolved to no address")
    results: list[ResolveResult] = []
    for family, _type, proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if host not in settings.allowed_hosts:
            check_address(address, settings)
        results.append(
            ResolveResult(
                hostname=host,
                host=str(sockaddr[0]),
                port=int(sockaddr[1]),
                family=family,
                proto=proto,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
        )
    return results


class CheckedResolver(AbstractResolver):
    """The dispatcher's resolver: every address is checked before aiohttp may connect to it."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings

    async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_UNSPEC) -> list[ResolveResult]:
        return await resolve_checked(host, port, self._settings, int(family))

    async def close(self) -> None:
        return None

