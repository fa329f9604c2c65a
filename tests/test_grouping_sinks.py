"""A route group's message on every sink type (issue 14, item 3): console, Slack
(incoming webhook and bot), Alertmanager and webhook each get ONE message for a group's
alerts, saying how many and naming the first ones with their links. Real outbox (both
backends), real loopback receivers, the worker on a manual clock."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

from relay.settings import AlertmanagerSinkSettings
from relay.sim import ManualClock
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.console import ConsoleSink
from relay.sinks.slack import SlackSink
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, FakeSlack, Receiver, enqueue
from tests.grouping_kit import WAIT_S, grouped, worker_on
from tests.test_render_slack import assert_within_slack_limits
from tests.test_sink_slack import CHANNEL, TOKEN, bot_settings, webhook_settings

backend, store = store_backends.backend, store_backends.store
DUE = T0 + timedelta(seconds=WAIT_S)
TITLE = "7 alerts: execution-failed for responder_id=resp-1"


async def deliver_group(sink: Any, store: Store, *, count: int = 7) -> list[Any]:
    """`count` notifications of one group enqueued at T0, then one step when it is due."""
    burst = [grouped(sink=sink.name) for _ in range(count)]
    await enqueue(store, burst, at=T0)  # type: ignore[arg-type]
    clock = ManualClock(T0)
    worker = worker_on(sink, store, clock)
    assert (await worker.step()).next_wake_at == DUE
    clock.set(DUE)
    result = await worker.step()
    assert (result.messages, result.outcomes) == (1, {"delivered": count})
    return burst


async def test_console_prints_a_heading_then_the_first_five(store: Store) -> None:
    out = io.StringIO()
    burst = await deliver_group(ConsoleSink("console", stream=out), store)
    heading, *lines = out.getvalue().splitlines()
    assert heading == f"09:00:00Z CRITICAL group    {TITLE} [route routes[0]]"
    assert len(lines) == 6
    for line, n in zip(lines[:5], burst, strict=False):
        assert line.startswith("  09:00:00Z CRITICAL firing")
        assert n.alert.summary in line
        assert str(n.alert.link) in line
    assert lines[5] == "  … and 2 more"


async def test_slack_gets_one_digest_naming_the_first_five_with_links(store: Store) -> None:
    async with Receiver() as receiver:
        sink = SlackSink("oncall", webhook_settings(receiver.url))
        try:
            burst = await deliver_group(sink, store)
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    message = json.loads(request.body)
    blocks = assert_within_slack_limits(message)
    assert message["text"] == f"🔴 {TITLE}"
    assert blocks[0]["text"]["text"] == f"🔴 {TITLE}"
    named = [b["text"]["text"] for b in blocks[1:6]]
    assert len(blocks) == 8  # header, five alerts, a divider, "and 2 more"
    for text, n in zip(named, burst[:5], strict=True):
        assert f"<{n.alert.link}|open>" in text
    assert "…and 2 more" in blocks[-1]["elements"][0]["text"]


async def test_slack_bot_posts_the_group_once(store: Store) -> None:
    async with FakeSlack(token=TOKEN, channels=[CHANNEL]) as slack:
        sink = SlackSink("oncall", bot_settings(slack.api_url))
        try:
            await deliver_group(sink, store, count=3)
        finally:
            await sink.aclose()
    (call,) = slack.calls
    assert call.method == "chat.postMessage"
    assert call.payload["text"] == "🔴 3 alerts: execution-failed for responder_id=resp-1"


async def test_alertmanager_gets_the_whole_group_in_one_post(store: Store) -> None:
    async with Receiver() as receiver:
        settings = AlertmanagerSinkSettings.model_validate(
            {"type": "alertmanager", "url": receiver.url}
        )
        sink = AlertmanagerSink("am", settings)
        try:
            burst = await deliver_group(sink, store)
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    assert request.path == "/api/v2/alerts"
    assert [a["labels"]["alert_id"] for a in request.json()] == [n.alert.id for n in burst]
