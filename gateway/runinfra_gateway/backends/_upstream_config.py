"""The ``[[deployments]]`` table of an upstream deployment, parsed and checked.

Errors are ``ValueError`` naming the offending key (never echoing a secret or a
URL that might carry one), so a bad config fails at start with a clear line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from runinfra_gateway.backends._replicas import POLICIES
from runinfra_gateway.real_numbers import is_number

__all__ = ["UpstreamConfig"]


@dataclass(frozen=True)
class UpstreamConfig:
    base_urls: tuple[str, ...]
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    #: Whole call for a non-streaming request; the longest silence between stream events.
    timeout_seconds: float = 60.0
    connect_timeout_seconds: float = 5.0
    #: Until the response headers arrive (a non-streaming engine sends them after generating).
    first_byte_timeout_seconds: float = 60.0
    #: Whole stream, first byte to ``[DONE]``.
    stream_timeout_seconds: float = 600.0
    load_balancing: str = "least_in_flight"
    health_check_interval_seconds: float = 10.0
    #: Relative to the base URL (``models`` → ``…/v1/models``), or absolute from the host root (``/health``).
    health_check_path: str = "models"
    max_connections: int = 1024
    #: The largest non-streaming answer accepted (images as base64 can be large); more is a deployment error.
    max_response_bytes: int = 64 * 1024 * 1024
    #: A PEM bundle of the CAs that sign the engine's certificate (a private CA); default: the system's.
    tls_ca_file: str | None = None
    probe_voice: str = "alloy"
    probe_image_size: str | None = None

    @classmethod
    def from_table(cls, deployment_id: str, table: Mapping[str, Any]) -> UpstreamConfig:
        where = f"deployment {deployment_id!r}"
        urls = _base_urls(table, where)
        api_key = _optional_str(table, "api_key", where)
        env_name = _optional_str(table, "api_key_env", where)
        if env_name is not None:
            api_key = os.environ.get(env_name)
            if not api_key:
                raise ValueError(f"{where}: the environment variable named by 'api_key_env' ({env_name}) is not set")
        if api_key is not None and not all(32 < ord(ch) < 127 for ch in api_key):
            # It goes into a request header as is: no spaces, control characters (header injection) or non-ASCII.
            raise ValueError(f"{where}: the upstream API key must be printable ASCII without spaces")
        timeout = _seconds(table, "timeout_seconds", 60.0, where)
        policy = _optional_str(table, "load_balancing", where) or "least_in_flight"
        if policy not in POLICIES:
            raise ValueError(f"{where}: 'load_balancing' must be one of {', '.join(POLICIES)}")
        max_connections = table.get("max_connections", 1024)
        if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"{where}: 'max_connections' must be a positive integer")
        max_response_bytes = table.get("max_response_bytes", 64 * 1024 * 1024)
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1024:
            raise ValueError(f"{where}: 'max_response_bytes' must be an integer of at least 1024")
        interval = table.get("health_check_interval_seconds", 10.0)
        if not is_number(interval) or not 0 <= interval < math.inf:
            raise ValueError(f"{where}: 'health_check_interval_seconds' must be a finite number >= 0 (0 disables)")
        return cls(
            base_urls=urls,
            model=_optional_str(table, "model", where),
            api_key=api_key,
            timeout_seconds=timeout,
            connect_timeout_seconds=_seconds(table, "connect_timeout_seconds", min(5.0, timeout), where),
            first_byte_timeout_seconds=_seconds(table, "first_byte_timeout_seconds", timeout, where),
            stream_timeout_seconds=_seconds(table, "stream_timeout_seconds", max(600.0, timeout), where),
            load_balancing=policy,
            health_check_interval_seconds=float(interval),
            health_check_path=_optional_str(table, "health_check_path", where) or "models",
            max_connections=max_connections,
            max_response_bytes=max_response_bytes,
            tls_ca_file=_ca_file(table, where),
            probe_voice=_optional_str(table, "probe_voice", where) or "alloy",
            probe_image_size=_optional_str(table, "probe_image_size", where),
        )


def _base_urls(table: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "base_url" in table and "base_urls" in table:
        raise ValueError(f"{where}: give 'base_url' or 'base_urls', not both")
    if "base_urls" in table:
        raw = table["base_urls"]
        key = "base_urls"
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"{where}: 'base_urls' must be a non-empty list of URLs")
    elif "base_url" in table:
        raw = [table["base_url"]]
        key = "base_url"
    else:
        raise ValueError(f"{where}: an upstream deployment needs 'base_url' or 'base_urls'")
    urls: list[str] = []
    for i, url in enumerate(raw):
        name = key if key == "base_url" else f"base_urls[{i}]"
        if not isinstance(url, str):
            raise ValueError(f"{where}: '{name}' must be a string")
        if not url.isascii() or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
            raise ValueError(f"{where}: '{name}' must be plain ASCII without spaces (percent-encode the rest)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where}: '{name}' must be an http(s) URL such as http://127.0.0.1:8000/v1")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"{where}: '{name}' must not carry credentials; use 'api_key_env'")
        if parts.query or parts.fragment:
            raise ValueError(f"{where}: '{name}' must not have a query string or fragment")
        urls.append(url.rstrip("/"))
    return tuple(urls)


def _ca_file(table: Mapping[str, Any], where: str) -> str | None:
    path = _optional_str(table, "tls_ca_file", where)
    if path is not None and not os.path.isfile(path):
        raise ValueError(f"{where}: 'tls_ca_file' names no readable file")
    return path


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: '{key}' must be a non-empty string")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if not is_number(value) or not 0 < value < math.inf:
        raise ValueError(f"{where}: '{key}' must be a positive number of seconds")
    return float(value)
