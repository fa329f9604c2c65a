"""What the relay tells operators about itself: Prometheus metrics and structured logs.

RelayMetrics(CollectorRegistry(), sources=[...], sinks=[...])  # hooks: on_cycle, ...
configure_logging(settings.log, secrets=...)
"""

from relay.telemetry.logs import configure_logging
from relay.telemetry.metrics import RelayMetrics

__all__ = ["RelayMetrics", "configure_logging"]
