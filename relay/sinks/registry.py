"""Sinks built from settings, one per configured name; and the `test-sink` notification.

Invariants:
- Every sink type in `SINK_TYPES` has exactly one builder here; a type without one is a
  bug found at start-up, not when the first alert fires.
- `build_sinks` is keyed by delivery target (`relay.settings.delivery_targets`): the
  sink's name, or `NAME[host:port]` for each URL of an Alertmanager with `urls`, so the
  delivery pool runs one worker per target.
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
    PagerDutySinkSettings,
    SinkSettings,
    SlackSinkSettings,
    TeamsSinkSettings,
    WebhookSinkSettings,
    delivery_targets,
)
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.base import Sink
from relay.sinks.console import ConsoleSink
from relay.sinks.email import EmailSink
from relay.sinks.pagerduty import PagerDutySink
from relay.sinks.slack import MessageRefs, SlackSink
from relay.sinks.teams import TeamsSink
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
    """The sink for `sinks.<name>`, when it has one delivery target (an Alertmanager with
    several `urls`: its first; `build_targets` gives them all)."""
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(name, settings, now=now)
    if isinstance(settings, SlackSinkSettings):
        return SlackSink(name, settings, now=now, refs=slack_refs)
    if isinstance(settings, AlertmanagerSinkSettings):
        return AlertmanagerSink(name, settings, now=now)
    if isinstance(settings, PagerDutySinkSettings):
        return PagerDutySink(name, settings, now=now)
    if isinstance(settings, TeamsSinkSettings):
        return TeamsSink(name, settings, now=now)
    if isinstance(settings, ConsoleSinkSettings):
        return ConsoleSink(name, settings, stream=console_stream)
    if isinstance(settings, EmailSinkSettings):
        return EmailSink(name, settings, now=now)
    raise TypeError(f"no sink builder for {type(settings).__name__}")  # pragma: no cover


def build_targets(
    name: str,
    settings: SinkSettings,
    *,
    now: Callable[[], datetime] = utcnow,
    console_stream: TextIO | None = None,
    slack_refs: MessageRefs | None = None,
) -> dict[str, Sink]:
    """The sink of each delivery target of `sinks.<name>`, by target name."""
    if isinstance(settings, AlertmanagerSinkSettings):
        paths = (
            [f"sinks.{name}.url"]
            if settings.urls is None
            else [f"sinks.{name}.urls.{index}" for index in range(len(settings.urls))]
        )
        return {
            target: AlertmanagerSink(target, settings, url=url, config_path=path, now=now)
            for target, url, path in zip(
                delivery_targets(name, settings), settings.endpoints, paths, strict=True
            )
        }
    sink = build_sink(name, settings, now=now, console_stream=console_stream, slack_refs=slack_refs)
    return {name: sink}


def build_sinks(
    sinks: Mapping[str, SinkSettings],
    *,
    now: Callable[[], datetime] = utcnow,
    console_stream: TextIO | None = None,
    slack_refs: Callable[[str], MessageRefs] | None = None,
) -> dict[str, Sink]:
    """Every configured sink by delivery target (pass `settings.sinks`). Close each with
    `aclose()`. `slack_refs(name)` gives a Slack sink where to remember its messages
    (the daemon passes the store; by default they are kept in memory)."""
    built: dict[str, Sink] = {}
    for name, sink in sinks.items():
        built |= build_targets(
            name,
            sink,
            now=now,
            console_stream=console_stream,
            slack_refs=slack_refs(name) if slack_refs is not None else None,
        )
    return built


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


async def send_test(
    sink: Sink, *, now: datetime, notification: Notification | None = None
) -> Notification:
    """Send a test notification straight through `sink` (no outbox): the caller sees a
    `SinkError` at once when the sink refuses it. Pass `notification` to send the same
    one to every target of a sink (one id, as for a real alert)."""
    if notification is None:
        notification = test_notification(sink.name, now=now)
    await sink.send([notification])
    return notification


__all__ = [
    "TEST_RULE",
    "build_sink",
    "build_sinks",
    "build_targets",
    "send_test",
    "test_notification",
]
