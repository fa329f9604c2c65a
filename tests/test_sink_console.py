"""The console sink and the sink registry (building sinks from settings, test alerts)."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from relay.errors import SinkError
from relay.settings import ConsoleSinkSettings, Settings, SinkSettings
from relay.settings.loader import load_settings
from relay.sinks import registry
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.console import ConsoleSink
from relay.sinks.slack import SlackSink
from relay.sinks.webhook import WebhookSink
from tests.delivery_kit import T0, Receiver, make_alert, make_notification


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("color", "tty", "coloured"),
    [
        ("auto", False, False),
        ("auto", True, True),
        ("always", False, True),
        ("never", True, False),
    ],
)
async def test_console_colours(color: str, tty: bool, coloured: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    settings = ConsoleSinkSettings.model_validate({"type": "console", "color": color})
    sink = ConsoleSink("console", settings, stream=stream)
    await sink.send([make_notification(), make_notification(make_alert(severity="warning"))])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert ("\x1b[" in stream.getvalue()) is coloured
    assert "CRITICAL" in lines[0]
    assert "WARNING" in lines[1]


async def test_console_closed_stream_is_dead() -> None:
    stream = io.StringIO()
    stream.close()
    sink = ConsoleSink("console", stream=stream)
    with pytest.raises(SinkError, match="cannot write to standard output") as caught:
        await sink.send([make_notification()])
    assert caught.value.retryable is False


async def test_console_follows_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    sink = ConsoleSink("console")
    await sink.send([make_notification(make_alert(summary="hello from the console"))])
    assert "hello from the console" in capsys.readouterr().out


def _settings(tmp_path: Any, sinks: str) -> Settings:
    config = tmp_path / "relay.yaml"
    config.write_text(
        "sources:\n  - name: prod\n    api_key: k\n"
        "rules:\n  - name: failed\n    when: {status: [failed]}\n"
        "    severity: critical\n    sinks: [console]\n"
        f"sinks:\n{sinks}"
    )
    return load_settings(config, environ={})


async def test_build_sinks_from_settings(tmp_path: Any) -> None:
    settings = _settings(
        tmp_path,
        "  console: {type: console}\n"
        "  hook: {type: webhook, url: 'https://hooks.example.com/x', max_alerts_per_request: 5,"
        " retry_initial: 2s, retry_max: 1m, max_age: 1h, rate_limit: 10/s, timeout: 3s}\n"
        "  slack: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/X'}\n"
        "  am: {type: alertmanager, url: 'http://alertmanager:9093'}\n",
    )
    sinks = registry.build_sinks(settings.sinks)
    try:
        assert isinstance(sinks["console"], ConsoleSink)
        assert isinstance(sinks["hook"], WebhookSink)
        assert isinstance(sinks["slack"], SlackSink)
        assert isinstance(sinks["am"], AlertmanagerSink)
        hook = sinks["hook"].policy
        assert hook.max_batch == 5
        assert hook.backoff.initial_s == 2.0
        assert hook.backoff.max_s == 60.0
        assert hook.max_age_s == 3600.0
        assert hook.rate_per_s == 10.0
        assert hook.burst == 10.0
        assert hook.timeout_s == 3.0
        assert hook.group_wait_s == 0.0
        slack = sinks["slack"].policy
        assert slack.rate_per_s == 1.0  # Slack's default: 1 message a second...
        assert slack.burst == 3.0  # ...with a small burst
        assert slack.group_wait_s == 10.0
        assert slack.backoff.initial_s == 1.0
        assert slack.backoff.max_s == 300.0
        assert slack.max_age_s == timedelta(hours=24).total_seconds()
    finally:
        for sink in sinks.values():
            await sink.aclose()


def test_test_notification_is_clearly_marked() -> None:
    first = registry.test_notification("oncall", now=T0)
    again = registry.test_notification("oncall", now=T0 + timedelta(seconds=1))
    assert first.kind == "test"
    assert first.sink == "oncall"
    assert first.alert.summary.startswith("[TEST]")
    assert first.alert.rule == "test-sink"
    assert first.alert.severity == "info"
    assert first.alert.execution is None
    assert first.id.endswith("_test")
    assert first.id != again.id  # a receiver that deduplicates still shows each test


async def test_send_test_through_a_webhook() -> None:
    async with Receiver() as receiver:
        sink = registry.build_sink(
            "hook", registry_settings({"type": "webhook", "url": f"{receiver.url}/t"})
        )
        try:
            sent = await registry.send_test(sink, now=T0)
        finally:
            await sink.aclose()
    body = receiver.requests[0].json()
    assert body["type"] == "alert.test"
    assert body["id"] == sent.id
    assert body["alert"]["summary"].startswith("[TEST]")


def registry_settings(raw: dict[str, Any]) -> SinkSettings:
    return TypeAdapter(SinkSettings).validate_python(raw)
