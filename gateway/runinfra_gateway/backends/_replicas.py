"""The replicas of one upstream deployment: which to try, in what order, and which are down.

A replica that refuses a connection (or fails a health check) is down for a
cool-down period, then tried again even without a health check bringing it
back, so a deployment heals by itself. Ordering is least-in-flight (ties go
round-robin, so an idle deployment still spreads its load) or plain round-robin.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

__all__ = ["POLICIES", "Replica", "ReplicaSet"]

POLICIES = ("least_in_flight", "round_robin")


@dataclass
class Replica:
    """One upstream base URL and what the gateway knows about it right now."""

    base_url: str
    in_flight: int = 0
    down_until: float = 0.0
    last_error: str = ""

    def is_up(self, now: float) -> bool:
        return self.down_until <= now


class ReplicaSet:
    def __init__(self, base_urls: list[str], *, policy: str = "least_in_flight", cooldown_seconds: float = 5.0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown load-balancing policy {policy!r}; use one of {', '.join(POLICIES)}")
        self.replicas = [Replica(url) for url in base_urls]
        self.policy = policy
        self.cooldown_seconds = cooldown_seconds
        self._turn = itertools.count()

    def candidates(self) -> list[Replica]:
        """The replicas that are up, best first; empty when every replica is down."""
        replicas = self.replicas
        if len(replicas) == 1:
            return replicas if replicas[0].down_until <= time.monotonic() else []
        now = time.monotonic()
        start = next(self._turn) % len(replicas)
        rotated = [r for r in replicas[start:] + replicas[:start] if r.is_up(now)]
        if self.policy == "least_in_flight":
            rotated.sort(key=lambda replica: replica.in_flight)  # stable: ties keep the round-robin order
        return rotated

    def mark_down(self, replica: Replica, reason: str) -> None:
        replica.down_until = time.monotonic() + self.cooldown_seconds
        replica.last_error = reason

    def mark_up(self, replica: Replica) -> None:
        replica.down_until = 0.0
        replica.last_error = ""

    def retry_after_seconds(self) -> int:
        """Whole seconds until the first down replica is tried again (at least 1)."""
        now = time.monotonic()
        soonest = min(replica.down_until for replica in self.replicas)
        return max(1, math.ceil(soonest - now))
