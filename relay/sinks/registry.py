"""Sinks built from settings, one per configured name; and the `test-sink` notification.

Invariants:
- Every sink type in `SINK_TYPES` has exactly one builder here; a type without one is a
  bug found at start-up, not when the first alert fires.
- A test notification is unmistakable: kind `test`, rule `test-sink`, severity `info`,
  a summary starting with "[TEST]", and a fresh id each time so a receiver that
  deduplicates still shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TextIO

from relay.clock import utcnow
from relay.domain.alerts import Alert, Notification, alert_id
from relay.settings import (
    AlertmanagerSinkSettings,
    ConsoleSinkSettings,
    EmailSinkSettings,
    SinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
)
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.base import Sink
from relay.sinks.console import ConsoleSink
from relay.sinks.email import EmailSink
from relay.sinks.slack import MessageRefs, SlackSink
from relay.sinks.webhook import WebhookSink

TEST_RULE = "test-sink"
TEST_SOURCE = "zaia-relay"


def build_sink(
    name: str,
    settings: SinkSettings,
    *,
    now: Callable[[], datetime] = utcnow,
    console_stream: TextIO | None = None,
    slack_refs: MessageRefs | None = None,
) -> Sink:
    """The sink for `sinks.<name>`."""
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(name, settings, now=now)
    if isinstance(settings, SlackSinkSettings):
        return SlackSink(name, settings, now=now, refs=slack_refs)
    if isinstance(settings, AlertmanagerSinkSettings):
        return AlertmanagerSink(name, settings, now=now)
    if isinstance(settings, ConsoleSinkSettings):
        return ConsoleSink(name, settings, stream=console_stream)
    if isinstance(settings, EmailSinkSettings):
        return EmailSink(name, settings, now=now)
    raise TypeError(f"no sink builder for {type(settings).__name__}")  # pragma: no cover


def build_sinks(
    sinks: Mapping[str, SinkSettings],
    *,
    now: Callable[[], datetime] = utcnow,
    console_stream: TextIO | None = None,
    slack_refs: Callable[[str], MessageRefs] | None = None,
) -> dict[str, Sink]:
    """Every configured sink by name (pass `settings.sinks`). Close each with `aclose()`.
    `slack_refs(name)` gives a Slack sink where to remember its messages (the daemon
    passes the store; by default they are kept in memory)."""
    return {
        name: build_sink(
            name,
            sink,
            now=now,
            console_stream=console_stream,
            slack_refs=slack_refs(name) if slack_refs is not None else None,
        )
        for name, sink in sinks.items()
    }


def test_notification(sink_name: str, *, now: datetime) -> Notification:
    """One clearly marked test alert for `zaia-relay test-sink NAME`."""
    alert = Alert(
        id=alert_id(TEST_RULE, sink_name, now.isoformat()),
        rule=TEST_RULE,
        severity="info",
        state="firing",
        source=TEST_SOURCE,
        summary=f"[TEST] zaia-relay test notification for sink {sink_name!r}",
        description=(
            "This is a test sent by `zaia-relay test-sink`. It is not about any execution; "
            "if you can read it, the sink works."
        ),
        started_at=now,
        labels={"rule": TEST_RULE, "severity": "info", "source": TEST_SOURCE},
    )
    return Notification.about(alert, sink=sink_name, kind="test", created_at=now)


async def send_test(sink: Sink, *, now: datetime) -> Notification:
    """Send a test notification straight through `sink` (no outbox): the caller sees a
    `SinkError` at once when the sink refuses it."""
    notification = test_notification(sink.name, now=now)
    await sink.send([notification])
    return notification


__all__ = ["TEST_RULE", "build_sink", "build_sinks", "send_test", "test_notification"]
