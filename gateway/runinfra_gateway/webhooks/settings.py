"""Operator settings for webhook delivery (the ``[webhooks]`` table of the gateway config)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from runinfra_gateway.real_numbers import is_finite_number

__all__ = ["DEFAULT_RETRY_SCHEDULE", "IPNetwork", "WebhookSettings", "normalize_host"]

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Delay before each attempt, in seconds: immediately, 5 s, 5 min, 30 min, 2 h,
# 5 h, 10 h, 24 h. Its length is the number of attempts a delivery gets.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1_800, 7_200, 18_000, 36_000, 86_400)


@dataclass(frozen=True)
class WebhookSettings:
    """How the dispatcher retries, how long it waits, and which URLs it may reach."""

    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    # Each retry waits its scheduled delay plus up to this fraction of it, so
    # endpoints that failed together do not all come back at the same instant.
    jitter_fraction: float = 0.2
    timeout_seconds: float = 10.0
    max_concurrency: int = 8
    poll_interval_seconds: float = 1.0
    # A claimed delivery belongs to its dispatcher until this long after the
    # claim; a dispatcher that died mid-attempt gives it back by letting it lapse.
    lease_seconds: float = 30.0
    # Hosts (names or IP literals, lower case) an operator allows explicitly:
    # they may use http:// and resolve to loopback/private addresses.
    allowed_hosts: frozenset[str] = frozenset()
    # Private networks an operator allows for https:// endpoints.
    allowed_networks: tuple[IPNetwork, ...] = ()
    rotation_overlap_seconds: float = 86_400.0
    # Extra certificate authorities (PEM) trusted for https endpoints, beside the system's.
    tls_ca_file: str | None = None
    # The key that seals signing secrets; replicas sharing one database must share it.
    # Default: webhook-master.key in the data directory, created on first start.
    master_key_file: str | None = None
    max_retry_after_seconds: float = 86_400.0
    response_excerpt_bytes: int = 512
    # usage.daily summarises a UTC day this long after it ends (the request log is written in batches).
    usage_daily_delay_seconds: float = 300.0
    usage_daily_check_seconds: float = 60.0
    # Settled events (and their deliveries and attempts) older than this go; 0 keeps them forever.
    retention_days: float = 30.0
    retention_check_seconds: float = 3_600.0

    def __post_init__(self) -> None:
        if not self.retry_schedule:
            raise ValueError("webhooks.retry_schedule needs at least one entry")
        if any(delay < 0 for delay in self.retry_schedule):
            raise ValueError("webhooks.retry_schedule delays must be >= 0")
        if self.timeout_seconds <= 0 or self.max_concurrency < 1 or self.poll_interval_seconds <= 0:
            raise ValueError("webhooks timeout, concurrency and poll interval must be positive")
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("webhooks.lease_seconds must exceed webhooks.timeout_seconds")
        if self.usage_daily_delay_seconds < 0 or self.usage_daily_check_seconds <= 0:
            raise ValueError("webhooks.usage_daily_delay_seconds must be >= 0 and usage_daily_check_seconds > 0")
        if self.retention_days < 0 or self.retention_check_seconds <= 0:
            raise ValueError("webhooks.retention_days must be >= 0 and retention_check_seconds > 0")
        if not 0 <= self.jitter_fraction <= 1:
            raise ValueError("webhooks.jitter_fraction must be between 0 and 1")

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule)

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None) -> WebhookSettings:
        """Settings from a ``[webhooks]`` TOML table; unknown keys are refused by name."""
        table = dict(table or {})
        known = {
            "retry_schedule",
            "jitter_fraction",
            "timeout_seconds",
            "max_concurrency",
            "poll_interval_seconds",
            "lease_seconds",
            "allowed_hosts",
            "allowed_networks",
            "rotation_overlap_seconds",
            "max_retry_after_seconds",
            "response_excerpt_bytes",
            "usage_daily_delay_seconds",
            "usage_daily_check_seconds",
            "tls_ca_file",
            "master_key_file",
            "retention_days",
            "retention_check_seconds",
        }
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown webhooks setting {unknown[0]!r}")
        kwargs: dict[str, Any] = {}
        try:
            if "retry_schedule" in table:
                schedule = table["retry_schedule"]
                if not isinstance(schedule, (list, tuple)):
                    raise ValueError("webhooks.retry_schedule must be an array of seconds")
                kwargs["retry_schedule"] = tuple(_finite("retry_schedule", d) for d in schedule)
            for name in (
                "jitter_fraction",
                "timeout_seconds",
                "poll_interval_seconds",
                "lease_seconds",
                "rotation_overlap_seconds",
                "max_retry_after_seconds",
                "usage_daily_delay_seconds",
                "usage_daily_check_seconds",
                "retention_days",
                "retention_check_seconds",
            ):
                if name in table:
                    kwargs[name] = _finite(name, table[name])
            for name, (low, high) in _WHOLE_NUMBERS.items():
                if name in table:
                    kwargs[name] = _whole(name, table[name], low, high)
            for name in ("tls_ca_file", "master_key_file"):
                if name in table:
                    path = table[name]
                    if not isinstance(path, str) or not Path(path).is_file():
                        raise ValueError(f"webhooks.{name}: no file at {path!r}")
                    kwargs[name] = path
            if "allowed_hosts" in table:
                kwargs["allowed_hosts"] = frozenset(normalize_host(h) for h in _strings("allowed_hosts", table))
            if "allowed_networks" in table:
                kwargs["allowed_networks"] = tuple(
                    ipaddress.ip_network(n, strict=False) for n in _strings("allowed_networks", table)
                )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid webhooks setting: {exc}") from None
        if "lease_seconds" not in kwargs and kwargs.get("timeout_seconds", 10.0) >= cls.lease_seconds:
            kwargs["lease_seconds"] = kwargs["timeout_seconds"] * 2 + 5
        return cls(**kwargs)


#: Whole-number settings and their bounds. A read of -1 bytes would be the whole response, however large.
_WHOLE_NUMBERS = {"max_concurrency": (1, 1024), "response_excerpt_bytes": (0, 65_536)}


def _whole(name: str, value: Any, low: int, high: int) -> int:
    """A TOML integer within bounds; a float, a string or a boolean is refused (``int()`` took all three)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"webhooks.{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _strings(name: str, table: Mapping[str, Any]) -> list[str]:
    """An array of strings (a bare string would be iterated as its characters)."""
    value = table[name]
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"webhooks.{name} must be an array of strings")
    return list(value)


def _finite(name: str, value: Any) -> float:
    """A TOML number as a float; a string, a boolean, nan or inf is refused (nan passes every range check)."""
    if not is_finite_number(value):
        raise ValueError(f"webhooks.{name} must be a finite number, got {value!r}")
    return float(value)


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form hosts are compared in."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
