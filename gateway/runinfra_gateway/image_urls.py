"""Short-lived image URLs: generated PNGs held in memory under unguessable tokens.

``images.generate`` with ``response_format="url"`` returns
``{public_base_url}/v1/images/files/{token}``; the URL works without an API
key (it is the capability) until its time-to-live ends. Tokens are 256-bit
random strings, compared by dictionary lookup of the exact string; expired
images are dropped and the total held is capped, oldest first, so a flood of
requests cannot exhaust memory.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from . import errors
from .edge.asgi import Receive, Scope, Send
from .edge.responses import send_bytes

__all__ = ["ImageUrlStore"]

_TOKEN_BYTES = 32


@dataclass(frozen=True)
class _Held:
    png: bytes
    expires_at: float


class ImageUrlStore:
    """PNG bytes by token, for ``ttl_seconds``; at most ``max_bytes`` held at once."""

    def __init__(self, ttl_seconds: float = 3600.0, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.ttl_seconds = float(ttl_seconds)
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, _Held] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, png: bytes) -> str:
        """Hold ``png`` and return the token that fetches it."""
        if len(png) > self.max_bytes:
            raise ValueError("image larger than the store's capacity")
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            while self._items and self._bytes + len(png) > self.max_bytes:
                _, oldest = self._items.popitem(last=False)
                self._bytes -= len(oldest.png)
            self._items[token] = _Held(png, now + self.ttl_seconds)
            self._bytes += len(png)
        return token

    def get(self, token: str) -> bytes | None:
        """The PNG for ``token``, or None once it has expired (or never existed)."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            held = self._items.get(token)
        return held.png if held is not None else None

    def seconds_left(self, token: str) -> float:
        with self._lock:
            held = self._items.get(token)
        return max(0.0, held.expires_at - time.monotonic()) if held is not None else 0.0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _expire(self, now: float) -> None:
        # Items are in insertion order and share one TTL, so expired ones are at the front.
        while self._items:
            token, held = next(iter(self._items.items()))
            if held.expires_at > now:
                return
            del self._items[token]
            self._bytes -= len(held.png)

    async def serve(self, token: str, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Answer ``GET /v1/images/files/{token}``: the PNG, or 404 when unknown or expired."""
        png = self.get(token)
        if png is None:
            raise errors.GatewayError(
                404,
                "not_found_error",
                "This image URL has expired or never existed; image URLs are short-lived.",
                code="image_not_found",
            )
        max_age = int(self.seconds_left(token))
        await send_bytes(
            send,
            200,
            png,
            b"image/png",
            request_id,
            [
                (b"cache-control", f"private, max-age={max_age}".encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        )
