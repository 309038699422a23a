"""Helpers shared by the upstream backend tests."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from runinfra_gateway.backends.upstream import UpstreamBackend
from runinfra_gateway.errors import GatewayError


def backend(base: str | list[str], **table: Any) -> UpstreamBackend:
    """An upstream backend for ``base`` (one URL or replicas) without background health checks."""
    key = "base_urls" if isinstance(base, list) else "base_url"
    return UpstreamBackend.from_config("dep", {key: base, "health_check_interval_seconds": 0, **table})


async def refusal(b: UpstreamBackend, call: Awaitable[Any]) -> GatewayError:
    """The GatewayError ``call`` must raise; ``b`` is closed afterwards either way."""
    try:
        with pytest.raises(GatewayError) as caught:
            await call
    finally:
        await b.aclose()
    return caught.value
