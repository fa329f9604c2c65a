"""Slack Block Kit rendering: always within Slack's limits, checked twice: by our own
counts and by parsing the JSON back through slack_sdk's models and their validators."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import Block

from relay.domain.alerts import FailureCause, Notification
from relay.sinks.slack_blocks import (
    DIGEST_SHOWN,
    clip,
    escape,
    slack_message,
    slack_thread_reply,
)
from tests.delivery_kit import make_alert, make_notification


def assert_within_slack_limits(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every limit we promise, and slack_sdk's own validation; returns the blocks."""
    assert len(message["text"]) <= 3000
    (attachment,) = message["attachments"]
    blocks = attachment["blocks"]
    assert 1 <= len(blocks) <= 50
    for raw in blocks:
        kind = raw["type"]
        if kind == "header":
            assert len(raw["text"]["text"]) <= 150
            assert raw["text"]["type"] == "plain_text"
        if kind == "section":
            if "text" in raw:
                assert len(raw["text"]["text"]) <= 3000
            assert len(raw.get("fields", [])) <= 10
            for item in raw.get("fields", []):
                assert len(item["text"]) <= 2000
        if kind == "actions":
            for element in raw["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element.get("url", "")) <= 3000
        # slack_sdk's models parse it back and their validators accept it.
        parsed = Block.parse(raw)
        assert parsed is not None, raw
        parsed.validate_json()
    BlockAttachment(blocks=[Block.parse(b) for b in blocks], color=attachment["color"]).to_dict()
    return list(blocks)


def test_single_alert_blocks() -> None:
    alert = make_alert(execution_id="exec-1")
    message = slack_message([make_notification(alert)])
    blocks = assert_within_slack_limits(message)
    assert [b["type"] for b in blocks] == [
        "header",
        "section",
        "section",
        "section",
        "actions",
        "context",
    ]
    assert blocks[0]["text"]["text"] == "🔴 Agent support-bot failed (execution exec-1)"
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields[:3] == [
        "*Status*\nFIRING · critical",
        "*Rule*\nexecution-failed",
        "*Source*\nprod",
    ]
    assert "*Execution*\nagent exec-1 (failed)" in fields
    assert "*Responder*\nresp-1" in fields
    assert "*Agent*\nagent-support-bot" in fields
    assert "*Credits*\n12.5" in fields
    assert "*Duration*\n42s" in fields
    cause = blocks[3]["text"]["text"]
    assert cause.startswith("*Failing step:* Look up the customer (tool-call, http)\n```")
    assert "crm.lookup" in cause
    assert blocks[4]["elements"][0]["url"] == "https://app.zaia.example/executions/exec-1"
    assert message["attachments"][0]["color"] == "#D92D20"
    assert message["text"] == "FIRING [critical] Agent support-bot failed (execution exec-1)"


def test_colour_by_severity_and_resolved() -> None:
    warning = slack_message([make_notification(make_alert(severity="warning"))])
    assert warning["attachments"][0]["color"] == "#F79009"
    resolved_alert = make_alert(windowed=True, state="resolved")
    resolved = slack_message([make_notification(resolved_alert, kind="resolved")])
    assert resolved["attachments"][0]["color"] == "#12B76A"
    blocks = assert_within_slack_limits(resolved)
    assert blocks[0]["text"]["text"].startswith("✅ ")
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Status*\nRESOLVED · critical" in fields
    assert "*Value*\n0.4" in fields


def test_50kb_error_excerpt_stays_within_limits() -> None:
    excerpt = ("Traceback <most recent call last> & more ``` " * 1200)[:50_000]
    assert len(excerpt) == 50_000
    alert = make_alert(error_excerpt=excerpt, summary="S" * 5000)
    alert = replace(alert, description="D&<>" * 5000)
    blocks = assert_within_slack_limits(slack_message([make_notification(alert)]))
    cause = blocks[3]["text"]["text"]
    assert len(cause) <= 3000
    assert cause.endswith("…```")  # cut, then the fence closed
    assert cause.count("```") == 2  # backticks in the excerpt cannot close the block
    assert "&lt;most recent call last&gt; &amp; more" in cause
    assert len(blocks[0]["text"]["text"]) == 150
    assert len(blocks[2]["text"]["text"]) <= 3000


def test_digest_of_500_alerts() -> None:
    notifications = [
        make_notification(make_alert(severity="critical" if i % 5 == 0 else "warning"))
        for i in range(500)
    ]
    message = slack_message(notifications)
    blocks = assert_within_slack_limits(message)
    assert blocks[0]["text"]["text"] == "🔴 500 alerts: 100 critical, 400 warning"
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == DIGEST_SHOWN
    assert blocks[-1]["type"] == "context"
    assert blocks[-1]["elements"][0]["text"].startswith(f"…and {500 - DIGEST_SHOWN} more")
    assert message["attachments"][0]["color"] == "#D92D20"
    assert len(json.dumps(message)) < 40_000


def test_digest_of_resolved_alerts_is_green() -> None:
    notifications = [
        make_notification(make_alert(windowed=True, state="resolved"), kind="resolved")
        for _ in range(3)
    ]
    message = slack_message(notifications)
    assert message["attachments"][0]["color"] == "#12B76A"
    blocks = assert_within_slack_limits(message)
    assert blocks[0]["text"]["text"] == "✅ 3 alerts: 3 resolved"
    assert blocks[-1]["type"] == "section"  # nothing hidden, no "and N more"


def test_test_notification_is_marked() -> None:
    alert = make_alert(summary="[TEST] zaia-relay test notification", severity="info", link=None)
    message = slack_message([make_notification(alert, kind="test")])
    blocks = assert_within_slack_limits(message)
    assert blocks[0]["text"]["text"].startswith("🧪 [TEST]")
    assert message["text"].startswith("TEST [info] [TEST]")
    assert all(b["type"] != "actions" for b in blocks)  # no link, no button


def test_link_too_long_or_unsafe_is_left_out() -> None:
    alert = make_alert(link="https://example.com/" + "x" * 3100)
    blocks = assert_within_slack_limits(slack_message([make_notification(alert)]))
    assert all(b["type"] != "actions" for b in blocks)
    unsafe = make_alert(link="https://example.com/a|b>c")
    digest = slack_message([make_notification(unsafe), make_notification(make_alert())])
    text = assert_within_slack_limits(digest)[1]["text"]["text"]
    assert "<https://example.com/a|b>c|" not in text
    assert text.endswith(" open")


def test_thread_reply() -> None:
    alert = make_alert(windowed=True, state="resolved")
    reply = slack_thread_reply(make_notification(alert, kind="resolved"))
    assert reply["text"].startswith("✅ Resolved at 2026-03-02T09:20:00Z: Failure ratio")
    assert reply["text"].endswith("(value 0.4)")
    Block.parse(reply["blocks"][0]).validate_json()  # type: ignore[union-attr]


def test_escape_and_clip() -> None:
    assert escape("a & <b> c") == "a &amp; &lt;b&gt; c"
    assert clip("abc", 3) == "abc"
    assert clip("abcdef", 4) == "abc…"
    # never half an entity
    assert clip("ab&amp;cd", 5) == "ab…"


texts = st.text(alphabet=st.sampled_from(list("ab <>&`*_~\n|é🔥")) | st.characters(), max_size=6000)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    summary=texts,
    description=texts,
    excerpt=st.none() | texts,
    label=st.none() | texts,
    count=st.integers(1, 80),
)
def test_any_text_and_any_count_stays_within_limits(
    summary: str, description: str, excerpt: str | None, label: str | None, count: int
) -> None:
    alert = make_alert(summary=summary or "x", error_excerpt=excerpt)
    cause = FailureCause(step_label=label, step_type="tool-call", error_excerpt=excerpt)
    alert = replace(alert, description=description, cause=cause)
    notifications: list[Notification] = [make_notification(alert)] * count
    assert_within_slack_limits(slack_message(notifications))
