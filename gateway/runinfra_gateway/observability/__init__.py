"""What the gateway tells its operator: request log lines, the request_log table, Prometheus metrics."""

from runinfra_gateway.observability.access_log import AccessLog
from runinfra_gateway.observability.metrics import Metrics
from runinfra_gateway.observability.request_log import RequestLogWriter

__all__ = ["AccessLog", "Metrics", "RequestLogWriter"]
