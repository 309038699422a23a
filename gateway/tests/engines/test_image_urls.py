"""Short-lived image URLs: unguessable tokens, expiry, a memory cap, served over ASGI."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from runinfra_gateway.errors import GatewayError
from runinfra_gateway.image_urls import ImageUrlStore

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


def test_put_then_get_with_unguessable_distinct_tokens() -> None:
    store = ImageUrlStore(ttl_seconds=60)
    tokens = {store.put(PNG) for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(token) >= 43
        assert store.get(token) == PNG
    assert store.get("nope") is None
    assert store.get(next(iter(tokens))[:-1]) is None


def test_images_expire() -> None:
    store = ImageUrlStore(ttl_seconds=0.2)
    token = store.put(PNG)
    assert store.get(token) == PNG
    time.sleep(0.3)
    assert store.get(token) is None
    assert len(store) == 0


def test_the_memory_cap_drops_the_oldest() -> None:
    store = ImageUrlStore(ttl_seconds=60, max_bytes=250)
    first, second, third = store.put(PNG), store.put(PNG), store.put(PNG)
    assert store.get(first) is None
    assert store.get(second) == PNG
    assert store.get(third) == PNG
    with pytest.raises(ValueError, match="capacity"):
        store.put(b"x" * 251)
    with pytest.raises(ValueError, match="ttl"):
        ImageUrlStore(ttl_seconds=0)


def _serve(store: ImageUrlStore, token: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": f"/v1/images/files/{token}", "headers": []}
    asyncio.run(store.serve(token, scope, receive, send, "req_test"))
    return sent


def test_serving_a_token_sends_the_png_with_its_type() -> None:
    store = ImageUrlStore(ttl_seconds=60)
    token = store.put(PNG)
    start, body = _serve(store, token)
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"image/png"
    assert headers[b"x-request-id"] == b"req_test"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"cache-control"].startswith(b"private, max-age=")
    assert body["body"] == PNG


def test_an_unknown_or_expired_token_is_404() -> None:
    store = ImageUrlStore(ttl_seconds=60)
    with pytest.raises(GatewayError) as caught:
        _serve(store, "not-a-token")
    assert caught.value.status == 404
    assert caught.value.type == "not_found_error"
