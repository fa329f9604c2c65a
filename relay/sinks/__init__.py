"""Sinks: where alerts go (Slack, webhooks, Alertmanager, PagerDuty, Teams, the console),
each a module with its wire payload (Slack's Block Kit in `slack_blocks`, Teams' Adaptive
Cards in `teams_cards`), the words they share in
`words`, what every sink has in `base` (`BaseSink`, `HttpSink`), and the registry that
builds them from settings.

    build_sinks(settings.sinks) -> {name: Sink}
    send_test(sink, now=...)           # `zaia-relay test-sink NAME`

Delivering the outbox to them (workers, retries, rate limits) is `relay.delivery`'s.

Import `test_notification` as `registry.test_notification` in test modules: pytest
would collect a bare `test_*` name as a test.
"""

from relay.sinks import registry
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.base import Sink, delivery_policy
from relay.sinks.console import ConsoleSink
from relay.sinks.pagerduty import PagerDutySink
from relay.sinks.registry import build_sink, build_sinks, build_targets, send_test
from relay.sinks.slack import MemoryMessageRefs, MessageRef, MessageRefs, SlackSink
from relay.sinks.slack_refs import StoredMessageRefs
from relay.sinks.teams import TeamsSink
from relay.sinks.webhook import WebhookSink

__all__ = [
    "AlertmanagerSink",
    "ConsoleSink",
    "MemoryMessageRefs",
    "MessageRef",
    "MessageRefs",
    "PagerDutySink",
    "Sink",
    "SlackSink",
    "StoredMessageRefs",
    "TeamsSink",
    "WebhookSink",
    "build_sink",
    "build_sinks",
    "build_targets",
    "delivery_policy",
    "registry",
    "send_test",
]
