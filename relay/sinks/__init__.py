"""Sinks: where alerts go (Slack, webhooks, Alertmanager, the console), and the workers
that deliver the outbox to them.

    build_sinks(settings.sinks) -> {name: Sink}
    DeliveryPool(sinks, outbox=store)  # one DeliveryWorker a sink: run(), wake(), drain()
    send_test(sink, now=...)           # `zaia-relay test-sink NAME`

Import `test_notification` as `registry.test_notification` in test modules: pytest
would collect a bare `test_*` name as a test.
"""

from relay.sinks import registry
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.base import Sink, delivery_policy
from relay.sinks.console import ConsoleSink
from relay.sinks.pool import DeliveryPool
from relay.sinks.registry import build_sink, build_sinks, send_test
from relay.sinks.slack import MemoryMessageRefs, MessageRef, MessageRefs, SlackSink
from relay.sinks.webhook import WebhookSink
from relay.sinks.worker import (
    DeliveryResult,
    DeliveryWorker,
    OnResult,
    Outbox,
    StepResult,
)

__all__ = [
    "AlertmanagerSink",
    "ConsoleSink",
    "DeliveryPool",
    "DeliveryResult",
    "DeliveryWorker",
    "MemoryMessageRefs",
    "MessageRef",
    "MessageRefs",
    "OnResult",
    "Outbox",
    "Sink",
    "SlackSink",
    "StepResult",
    "WebhookSink",
    "build_sink",
    "build_sinks",
    "delivery_policy",
    "registry",
    "send_test",
]
