"""The Slack sink: incoming-webhook mode against a recording receiver, bot-token mode
against a fake Slack Web API (chat.postMessage, chat.update, threads) on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relay.errors import SinkError
from relay.scrub import REDACTED
from relay.settings import SlackSinkSettings
from relay.sinks.slack import MemoryMessageRefs, MessageRef, SlackSink
from relay.sinks.slack_refs import StoredMessageRefs
from relay.store import SqliteStore
from tests.delivery_kit import FakeSlack, Receiver, Reply, make_alert, make_notification
from tests.test_render_slack import assert_within_slack_limits

TOKEN = "xoxb-1111-2222-SECRETbottoken"
CHANNEL = "C0ALERTS"
HOOK_PATH = "/services/T0001/B0001/HOOKSECRETabcdef"


def webhook_settings(base_url: str, **extra: Any) -> SlackSinkSettings:
    return SlackSinkSettings.model_validate(
        {"type": "slack", "webhook_url": f"{base_url}{HOOK_PATH}", **extra}
    )


def bot_settings(api_url: str, **extra: Any) -> SlackSinkSettings:
    return SlackSinkSettings.model_validate(
        {"type": "slack", "bot_token": TOKEN, "channel": CHANNEL, "api_url": api_url, **extra}
    )


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN, channels=[CHANNEL]) as fake:
        yield fake


async def test_incoming_webhook_posts_block_kit() -> None:
    async with Receiver() as receiver:
        sink = SlackSink("oncall", webhook_settings(receiver.url))
        try:
            await sink.send([make_notification()])
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    assert request.path == HOOK_PATH
    assert request.headers["content-type"].startswith("application/json")
    assert "authorization" not in request.headers
    assert_within_slack_limits(request.json())


async def test_incoming_webhook_digest() -> None:
    async with Receiver() as receiver:
        sink = SlackSink("oncall", webhook_settings(receiver.url))
        try:
            assert sink.max_batch >= 500
            await sink.send([make_notification() for _ in range(500)])
        finally:
            await sink.aclose()
    body = receiver.requests[0].json()
    blocks = assert_within_slack_limits(body)
    assert blocks[0]["text"]["text"].endswith("500 alerts: 500 critical")


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [
        (Reply(400, "invalid_payload"), False),
        (Reply(403, "action_prohibited"), False),
        (Reply(404, "channel_not_found"), False),
        (Reply(410, "channel_is_archived"), False),
        (Reply(429, "rate_limited", {"Retry-After": "30"}), True),
        (Reply(500, "rollup_error"), True),
    ],
)
async def test_incoming_webhook_errors(reply: Reply, retryable: bool) -> None:
    async with Receiver(lambda _: reply) as receiver:
        sink = SlackSink("oncall", webhook_settings(receiver.url))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert caught.value.retryable is retryable
    assert reply.body in str(caught.value)
    assert "HOOKSECRET" not in str(caught.value)
    if reply.status == 429:
        assert caught.value.retry_after_s == 30.0


async def test_bot_posts_to_the_channel(slack: FakeSlack) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    try:
        await sink.send([make_notification()])
    finally:
        await sink.aclose()
    (call,) = slack.calls
    assert call.method == "chat.postMessage"
    assert call.channel == CHANNEL
    assert_within_slack_limits(call.payload)


async def test_bot_resolve_edits_the_original_and_replies_in_thread(slack: FakeSlack) -> None:
    refs = MemoryMessageRefs()
    sink = SlackSink("oncall", bot_settings(slack.api_url), refs=refs)
    firing = make_alert(rule="agent-failure-rate", windowed=True)
    resolved = make_alert(rule="agent-failure-rate", windowed=True, state="resolved")
    resolved = replace(resolved, id=firing.id, group=firing.group)
    try:
        await sink.send([make_notification(firing)])
        original_ts = slack.calls[0].ts
        assert await refs.get(firing.id) == MessageRef(CHANNEL, original_ts, single=True)
        await sink.send([make_notification(resolved, kind="resolved")])
    finally:
        await sink.aclose()
    methods = [(c.method, c.ts) for c in slack.calls]
    assert methods[0] == ("chat.postMessage", original_ts)
    assert methods[1] == ("chat.update", original_ts)
    assert methods[2][0] == "chat.postMessage"
    # The original now shows the resolved alert, in green.
    edited = slack.messages[original_ts]
    assert edited["attachments"][0]["color"] == "#12B76A"
    assert edited["text"].startswith("RESOLVED")
    assert_within_slack_limits(edited)
    (reply,) = slack.replies[original_ts]
    assert reply["text"].startswith("✅ Resolved at")
    assert "reply_broadcast" not in reply


async def test_bot_reminder_is_broadcast_in_thread(slack: FakeSlack) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    alert = make_alert(windowed=True)
    try:
        await sink.send([make_notification(alert)])
        await sink.send([make_notification(alert, kind="reminder", sequence=1)])
    finally:
        await sink.aclose()
    ts = slack.calls[0].ts
    (reply,) = slack.replies[ts]
    assert reply["reply_broadcast"] is True
    assert reply["text"].startswith("🔴 Reminder at")
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.postMessage"]


async def test_bot_resolve_after_a_digest_only_replies(slack: FakeSlack) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    alerts = [make_alert(windowed=True) for _ in range(3)]
    try:
        await sink.send([make_notification(a) for a in alerts])
        resolved = replace(alerts[1], state="resolved")
        await sink.send([make_notification(resolved, kind="resolved")])
    finally:
        await sink.aclose()
    digest_ts = slack.calls[0].ts
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.postMessage"]
    assert len(slack.replies[digest_ts]) == 1  # a reply, and the digest left as it was


async def test_bot_resolve_without_a_known_message_posts_anew(slack: FakeSlack) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    resolved = make_alert(windowed=True, state="resolved")
    try:
        await sink.send([make_notification(resolved, kind="resolved")])
    finally:
        await sink.aclose()
    (call,) = slack.calls
    assert call.method == "chat.postMessage"
    assert "thread_ts" not in call.payload


async def test_bot_original_gone_still_replies(slack: FakeSlack) -> None:
    refs = MemoryMessageRefs()
    sink = SlackSink("oncall", bot_settings(slack.api_url), refs=refs)
    alert = make_alert(windowed=True)
    try:
        await sink.send([make_notification(alert)])
        ts = slack.calls[0].ts
        slack.fail_next.append("message_not_found")
        await sink.send([make_notification(alert, kind="resolved")])
    finally:
        await sink.aclose()
    assert len(slack.replies[ts]) == 1


@pytest.mark.parametrize(
    ("failure", "retryable"),
    [
        ("channel_not_found", False),
        ("not_in_channel", False),
        ("invalid_blocks", False),
        ("internal_error", True),
        ("service_unavailable", True),
        (429, True),
        (503, True),
    ],
)
async def test_bot_errors(slack: FakeSlack, failure: str | int, retryable: bool) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    slack.fail_next.append(failure)
    try:
        with pytest.raises(SinkError) as caught:
            await sink.send([make_notification()])
    finally:
        await sink.aclose()
    assert caught.value.retryable is retryable
    assert TOKEN not in str(caught.value)


async def test_bot_wrong_token_is_dead(slack: FakeSlack) -> None:
    settings = SlackSinkSettings.model_validate(
        {"type": "slack", "bot_token": "xoxb-wrong", "channel": CHANNEL, "api_url": slack.api_url}
    )
    sink = SlackSink("oncall", settings)
    try:
        with pytest.raises(SinkError, match="invalid_auth") as caught:
            await sink.send([make_notification()])
    finally:
        await sink.aclose()
    assert caught.value.retryable is False
    assert "xoxb-wrong" not in str(caught.value)


async def test_memory_refs_are_bounded() -> None:
    refs = MemoryMessageRefs(limit=2)
    for i in range(3):
        await refs.put(f"a{i}", MessageRef(CHANNEL, str(i), single=True))
    assert await refs.get("a0") is None
    assert await refs.get("a2") == MessageRef(CHANNEL, "2", single=True)


def test_repr_hides_secrets() -> None:
    webhook = SlackSink("oncall", webhook_settings("https://hooks.slack.com"))
    bot = SlackSink("oncall", bot_settings("https://slack.com/api"))
    assert "HOOKSECRET" not in repr(webhook)
    assert TOKEN not in repr(bot)


async def test_bot_resolve_edits_the_original_even_after_a_restart(
    slack: FakeSlack, tmp_path: Path
) -> None:
    firing = make_alert(rule="agent-failure-rate", windowed=True)
    resolved = replace(
        make_alert(rule="agent-failure-rate", windowed=True, state="resolved"),
        id=firing.id,
        group=firing.group,
    )
    async with SqliteStore(tmp_path / "state.db") as store:
        before = SlackSink(
            "oncall", bot_settings(slack.api_url), refs=StoredMessageRefs(store, "oncall")
        )
        try:
            await before.send([make_notification(firing)])
        finally:
            await before.aclose()
    original_ts = slack.calls[0].ts
    # A new process, the same store: the resolve still edits the original message.
    async with SqliteStore(tmp_path / "state.db") as store:
        after = SlackSink(
            "oncall", bot_settings(slack.api_url), refs=StoredMessageRefs(store, "oncall")
        )
        try:
            await after.send([make_notification(resolved, kind="resolved")])
        finally:
            await after.aclose()
    assert [(c.method, c.ts) for c in slack.calls[:2]] == [
        ("chat.postMessage", original_ts),
        ("chat.update", original_ts),
    ]
    assert slack.messages[original_ts]["text"].startswith("RESOLVED")


async def test_bot_error_codes_echoing_the_token_are_scrubbed(slack: FakeSlack) -> None:
    sink = SlackSink("oncall", bot_settings(slack.api_url))
    slack.fail_next.append(f"bad_token_Bearer_{TOKEN}")
    try:
        with pytest.raises(SinkError) as caught:
            await sink.send([make_notification()])
    finally:
        await sink.aclose()
    assert f"bad_token_Bearer_{REDACTED}" in str(caught.value)
    assert TOKEN not in str(caught.value)
