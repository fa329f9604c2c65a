"""Rule labels, annotations, responder names and Slack mentions on every sink, against
the loopback receivers (a recording HTTP receiver, the fake Slack Web API)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from relay.domain.alerts import Alert, Notification
from relay.settings import (
    AlertmanagerSinkSettings,
    ConsoleSinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
)
from relay.sinks.alertmanager import AlertmanagerSink
from relay.sinks.console import ConsoleSink
from relay.sinks.slack import SlackSink
from relay.sinks.slack_blocks import MAX_FALLBACK_CHARS, slack_message
from relay.sinks.slack_mentions import MAX_MENTION_CHARS
from relay.sinks.webhook import WebhookSink
from tests.delivery_kit import FakeSlack, Receiver, make_alert, make_notification
from tests.test_render_slack import assert_within_slack_limits

RUNBOOK = "https://wiki.example.com/agent-failed"
TEAM = "<!subteam^S0123ABC>"
ONCALL = "<@U0ONCALL1>"
TOKEN = "xoxb-1111-2222-labelsbottoken"
CHANNEL = "C0ALERTS"


def labelled(**kwargs: Any) -> Alert:
    """An alert as a rule with labels and annotations, for a named responder, makes it."""
    alert = make_alert(**kwargs)
    return replace(
        alert,
        summary="Support Bot agent failed: Tool 'crm.lookup' failed",
        labels={
            "team": "payments",
            **alert.labels,
            "responder_id": "resp-1",
            "responder": "Support Bot",
        },
        annotations={"runbook_url": RUNBOOK, "dashboard": "payments-overview"},
    )


def slack_settings(url: str, **extra: Any) -> SlackSinkSettings:
    raw = {"type": "slack", "webhook_url": f"{url}/hook", **extra}
    return SlackSinkSettings.model_validate(raw)


async def post_to_slack(notifications: list[Notification], **extra: Any) -> dict[str, Any]:
    async with Receiver() as receiver:
        sink = SlackSink("oncall", slack_settings(receiver.url, **extra))
        try:
            await sink.send(notifications)
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    body: dict[str, Any] = request.json()
    return body


def blocks_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = body["attachments"][0]["blocks"]
    return blocks


# --- Alertmanager, webhook, console -------------------------------------------------


async def test_alertmanager_gets_the_labels_and_annotations() -> None:
    async with Receiver() as receiver:
        settings = AlertmanagerSinkSettings.model_validate(
            {"type": "alertmanager", "url": receiver.url, "labels": {"team": "sink-default"}}
        )
        sink = AlertmanagerSink("am", settings)
        notification = make_notification(labelled())
        try:
            await sink.send([notification])
        finally:
            await sink.aclose()
    [sent] = receiver.requests[0].json()
    assert sent["labels"]["team"] == "payments"  # the rule's label wins over the sink's
    assert sent["labels"]["responder"] == "Support Bot"
    assert sent["labels"]["responder_id"] == "resp-1"
    assert sent["annotations"]["runbook_url"] == RUNBOOK
    assert sent["annotations"]["dashboard"] == "payments-overview"
    assert sent["annotations"]["summary"].startswith("Support Bot agent failed")


async def test_alertmanager_annotations_never_replace_the_relays() -> None:
    alert = replace(labelled(), annotations={"summary": "from an old rule", "team": "x"})
    async with Receiver() as receiver:
        sink = AlertmanagerSink(
            "am",
            AlertmanagerSinkSettings.model_validate({"type": "alertmanager", "url": receiver.url}),
        )
        try:
            await sink.send([make_notification(alert)])
        finally:
            await sink.aclose()
    [sent] = receiver.requests[0].json()
    assert sent["annotations"]["summary"] == alert.summary
    assert sent["annotations"]["team"] == "x"


async def test_webhook_json_carries_labels_annotations_and_the_ids() -> None:
    async with Receiver() as receiver:
        settings = WebhookSinkSettings.model_validate({"type": "webhook", "url": receiver.url})
        sink = WebhookSink("hook", settings)
        try:
            await sink.send([make_notification(labelled())])
        finally:
            await sink.aclose()
    body = receiver.requests[0].json()
    assert body["alert"]["labels"]["team"] == "payments"
    assert body["alert"]["labels"]["responder"] == "Support Bot"
    assert body["alert"]["annotations"] == {
        "runbook_url": RUNBOOK,
        "dashboard": "payments-overview",
    }
    assert body["alert"]["summary"].startswith("Support Bot agent failed")
    assert body["execution"]["responder_id"] == "resp-1"


async def test_console_line_shows_rule_labels_and_annotations() -> None:
    stream = io.StringIO()
    settings = ConsoleSinkSettings.model_validate({"type": "console", "color": "never"})
    await ConsoleSink("console", settings, stream=stream).send([make_notification(labelled())])
    [line] = stream.getvalue().splitlines()
    assert "Support Bot agent failed" in line
    assert f"team=payments runbook_url={RUNBOOK} dashboard=payments-overview" in line
    assert "severity=" not in line  # the relay's own labels are said otherwise
    assert "responder_id=" not in line


# --- Slack: runbook, names, extras ----------------------------------------------------


async def test_slack_shows_a_runbook_button_the_name_and_the_extras() -> None:
    body = await post_to_slack([make_notification(labelled())])
    blocks = assert_within_slack_limits(body)
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(b["text"]["text"], b["url"]) for b in buttons][-1] == ("Runbook", RUNBOOK)
    fields = [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]
    assert "*Responder*\nSupport Bot" in fields
    context = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert "team=payments · dashboard: payments-overview" in context


async def test_slack_digest_links_each_runbook() -> None:
    body = await post_to_slack([make_notification(labelled()) for _ in range(3)])
    blocks = assert_within_slack_limits(body)
    lines = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(lines) == 3
    assert all(f"<{RUNBOOK}|runbook>" in line for line in lines)


def test_a_runbook_slack_cannot_link_is_left_out() -> None:
    alert = replace(labelled(), annotations={"runbook_url": "https://x.example/a b"})
    blocks = assert_within_slack_limits(slack_message([make_notification(alert)]))
    buttons = [e["text"]["text"] for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert "Runbook" not in buttons


def test_long_annotations_stay_within_slack_limits() -> None:
    many = {f"note_{i}": "x" * 500 for i in range(20)}
    alert = replace(labelled(), annotations=many)
    blocks = assert_within_slack_limits(slack_message([make_notification(alert)]))
    context = [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert any(text.startswith("team=payments · note_0: ") for text in context)


# --- Slack mentions -------------------------------------------------------------------

MENTIONS = {"critical": [TEAM, ONCALL], "warning": ["<!here>"], "info": []}


async def test_mentions_of_the_severity_go_outside_the_escaped_text() -> None:
    hostile = "Tool failed: <!channel> <@U0ATTACKER> & more"
    alert = make_alert(error_excerpt=hostile, summary=f"agent failed: {hostile}")
    body = await post_to_slack([make_notification(alert)], mentions=MENTIONS)
    assert body["text"].startswith(f"{TEAM} {ONCALL} FIRING [critical] ")
    # Slack reads mentions in the message text and in mrkdwn (plain_text, like the
    # header, never pings): there the execution's text stays escaped.
    marked = [body["text"], *mrkdwn_texts(body["attachments"])]
    assert not any("<!channel>" in text or "<@U0ATTACKER>" in text for text in marked)
    assert "&lt;!channel&gt;" in body["text"]
    assert sum("&lt;!channel&gt;" in text for text in marked) == 2  # the text, the cause
    assert_within_slack_limits(body)


def mrkdwn_texts(value: Any) -> list[str]:
    """Every mrkdwn text object's text in a (nested) Block Kit structure."""
    if isinstance(value, list):
        return [text for item in value for text in mrkdwn_texts(item)]
    if not isinstance(value, dict):
        return []
    found = [value["text"]] if value.get("type") == "mrkdwn" else []
    return found + [text for item in value.values() for text in mrkdwn_texts(item)]


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        (["warning", "critical", "info"], f"{TEAM} {ONCALL} "),  # the worst in the digest
        (["warning", "info"], "<!here> "),
        (["info"], ""),  # an empty list: no mention
    ],
)
async def test_a_digest_mentions_its_worst_severity(severities: list[Any], expected: str) -> None:
    items = [make_notification(make_alert(severity=s)) for s in severities]
    body = await post_to_slack(items, mentions=MENTIONS)
    assert body["text"].startswith(f"{expected}🔴" if "critical" in severities else expected)
    assert body["text"].count("<!") + body["text"].count("<@") == len(expected.split())


@pytest.mark.parametrize("kind", ["resolved", "test"])
def test_resolved_and_test_messages_mention_no_one(kind: Any) -> None:
    alert = make_alert(state="resolved" if kind == "resolved" else "firing")
    message = slack_message([make_notification(alert, kind=kind)], mentions=MENTIONS)
    assert "<!" not in message["text"]
    assert "<@" not in message["text"]


def test_a_resolved_alert_in_a_digest_does_not_make_it_mention() -> None:
    items = [
        make_notification(make_alert(state="resolved"), kind="resolved"),
        make_notification(make_alert(severity="info")),
    ]
    assert "<!" not in slack_message(items, mentions=MENTIONS)["text"]


def test_mentions_are_bounded_and_the_text_stays_within_limits() -> None:
    many = {"critical": [f"<@U{i:08d}>" for i in range(200)]}
    alert = make_alert(summary="x" * 4000)
    message = slack_message([make_notification(alert)], mentions=many)
    mentioned = [part for part in message["text"].split() if part.startswith("<@")]
    assert 0 < len(" ".join(mentioned)) <= MAX_MENTION_CHARS
    assert len(message["text"]) <= MAX_FALLBACK_CHARS


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN, channels=[CHANNEL]) as fake:
        yield fake


async def test_bot_mode_mentions_on_firing_and_reminders_not_on_resolve(
    fake_slack: FakeSlack,
) -> None:
    settings = SlackSinkSettings.model_validate(
        {
            "type": "slack",
            "bot_token": TOKEN,
            "channel": CHANNEL,
            "api_url": fake_slack.api_url,
            "mentions": MENTIONS,
        }
    )
    sink = SlackSink("oncall", settings)
    alert = make_alert(windowed=True)
    try:
        await sink.send([make_notification(alert)])
        await sink.send([make_notification(alert, kind="reminder", sequence=1)])
        resolved = replace(alert, state="resolved")
        await sink.send([make_notification(resolved, kind="resolved")])
    finally:
        await sink.aclose()
    first, reminder, edit, reply = (call.payload for call in fake_slack.calls)
    assert first["text"].startswith(f"{TEAM} {ONCALL} FIRING")
    assert reminder["text"].startswith(f"{TEAM} {ONCALL} ")
    assert reminder["blocks"][0]["text"]["text"].startswith(f"{TEAM} {ONCALL} ")
    assert TEAM not in edit["text"]
    assert TEAM not in reply["text"]


@pytest.mark.parametrize(
    "entry",
    ["@here", "<!subteam^s0123>", "<#C0123>", "<!channel|x>", "<https://evil.example|x>", ""],
)
def test_a_bad_mention_is_named(entry: str) -> None:
    raw = {
        "type": "slack",
        "webhook_url": "https://hooks.slack.com/services/T/B/C",
        "mentions": {"critical": [TEAM, entry]},
    }
    with pytest.raises(ValidationError) as caught:
        SlackSinkSettings.model_validate(raw)
    [error] = caught.value.errors()
    assert error["loc"] == ("mentions", "critical", 1)
    assert "not a Slack mention" in error["msg"]


def test_good_mentions_and_a_single_one_are_accepted() -> None:
    raw = {
        "type": "slack",
        "webhook_url": "https://hooks.slack.com/services/T/B/C",
        "mentions": {"critical": TEAM, "warning": ["<!here>", "<!channel>", "<!everyone>"]},
    }
    settings = SlackSinkSettings.model_validate(raw)
    assert settings.mentions["critical"] == [TEAM]
    assert settings.mentions["warning"] == ["<!here>", "<!channel>", "<!everyone>"]


def test_slack_names_the_responder_of_a_windowed_group() -> None:
    alert = make_alert(windowed=True)
    assert alert.group is not None
    named = replace(alert, labels={**alert.labels, "responder": "Sales Qualifier"})
    for shown, expected in (
        (alert, f"responder_id={alert.group['responder_id']}"),
        (named, "Sales Qualifier"),
    ):
        blocks = assert_within_slack_limits(slack_message([make_notification(shown)]))
        fields = [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]
        assert f"*Group*\n{expected}" in fields
