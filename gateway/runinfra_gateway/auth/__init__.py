"""Authentication: API keys (workspace or pipeline scope) and the admin token."""

from runinfra_gateway.auth.admin_token import AdminToken, ensure_admin_token
from runinfra_gateway.auth.credentials import digest, display_prefix, new_api_key, new_id
from runinfra_gateway.auth.keys import KeyRecord, KeyTable, bearer_token

__all__ = [
    "AdminToken",
    "KeyRecord",
    "KeyTable",
    "bearer_token",
    "digest",
    "display_prefix",
    "ensure_admin_token",
    "new_api_key",
    "new_id",
]
