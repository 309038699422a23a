"""Idempotency-Key: replay finished responses, lock in-flight ones, refuse a reused key.

See :mod:`runinfra_gateway.idempotency.store` for the flow, what a crash leaves and
the cross-replica design.
"""

from runinfra_gateway.idempotency.store import IdempotencyStore, StoredResponse, check_idempotency_key

__all__ = ["IdempotencyStore", "StoredResponse", "check_idempotency_key"]
