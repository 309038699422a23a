"""Prometheus metrics, on a registry of the app's own (several apps in one process stay apart).

Label values are bounded: an operation name or ``other``, a status code, a
deployment id from the registry; never a raw path, never a key.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "runinfra_requests", "Requests by route and status.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "runinfra_request_duration_seconds",
            "Time from request to the end of the response.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.cost = Counter(
            "runinfra_charged_microcents", "Micro-cents charged, by deployment.", ["deployment"], registry=self.registry
        )
        self.tokens = Counter(
            "runinfra_tokens", "Tokens processed, by deployment and direction.", ["deployment", "direction"],
            registry=self.registry,
        )
        self.in_flight = Gauge("runinfra_requests_in_flight", "Requests being served.", registry=self.registry)
        self.deployment_active = Gauge(
            "runinfra_deployment_active", "1 when the deployment is verified and routable.", ["deployment"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._deployment_children: dict[str, tuple[Counter, Counter, Counter]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        children = self._children.get((route, status))
        if children is None:
            children = (self.requests.labels(route, str(status)), self.latency.labels(route))
            self._children[(route, status)] = children
        children[0].inc()
        children[1].observe(seconds)

    def charged(self, deployment: str, microcents: int, input_tokens: int, output_tokens: int) -> None:
        children = self._deployment_children.get(deployment)
        if children is None:
            children = (
                self.cost.labels(deployment),
                self.tokens.labels(deployment, "input"),
                self.tokens.labels(deployment, "output"),
            )
            self._deployment_children[deployment] = children
        if microcents:
            children[0].inc(microcents)
        if input_tokens:
            children[1].inc(input_tokens)
        if output_tokens:
            children[2].inc(output_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
