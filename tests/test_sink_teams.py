"""The Teams sink against a loopback Workflows webhook that checks the envelope, the
card against the official Adaptive Card 1.5 schema and the 28 KB limit
(`tests.vendor_kit.FakeTeams`): a detailed card for one alert, digests that list as
many as fit then "and N more", alert text kept plain (no markdown injection), and the
answers classified (202 delivered, 4xx dead but 408/429, 5xx retried)."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from relay.domain.alerts import Notification
from relay.errors import SinkError
from relay.settings import TeamsSinkSettings
from relay.sim import ManualClock
from relay.sinks.teams import TeamsSink
from relay.sinks.teams_cards import (
    TEAMS_MAX_BODY_BYTES,
    encode_message,
    plain,
    teams_message,
)
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, enqueue, make_alert, make_notification
from tests.grouping_kit import worker_on
from tests.test_grouping_sinks import TITLE, deliver_group
from tests.vendor_kit import TEAMS_LIMIT_BYTES, TEAMS_SIG, FakeTeams, card_errors

backend, store = store_backends.backend, store_backends.store
RUNBOOK = "https://runbooks.example/execution-failed"
_MARKDOWN_CHARS = set("\\`*_[]~<>")


def teams_settings(url: str, **extra: Any) -> TeamsSinkSettings:
    return TeamsSinkSettings.model_validate({"type": "teams", "webhook_url": url, **extra})


async def send(teams: FakeTeams, notifications: list[Notification]) -> None:
    sink = TeamsSink("teams", teams_settings(teams.webhook_url))
    try:
        await sink.send(notifications)
    finally:
        await sink.aclose()


def firing(**alert: Any) -> Notification:
    base = make_alert(**alert)
    base = dataclasses.replace(
        base,
        labels={**base.labels, "responder": "Support Bot", "team": "payments"},
        annotations={"runbook_url": RUNBOOK},
    )
    return make_notification(base, sink="teams")


def texts_of(node: Any) -> list[str]:
    """Every TextBlock text and fact value of a card, in order."""
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "TextBlock" else []
        if "title" in node and "value" in node:
            found.append(f"{node['title']}={node['value']}")
        return found + [t for v in node.values() for t in texts_of(v)]
    if isinstance(node, list):
        return [t for v in node for t in texts_of(v)]
    return []


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


async def test_one_alert_is_a_detailed_card() -> None:
    n = firing()
    async with FakeTeams() as teams:
        await send(teams, [n])
    assert teams.refused == []
    (post,) = teams.posts
    card = post.card
    heading = card["body"][0]
    assert heading["style"] == "attention"
    assert heading["items"][0]["weight"] == "bolder"
    assert unescape(heading["items"][0]["text"]) == n.alert.summary
    facts = {f["title"]: unescape(f["value"]) for f in card["body"][1]["facts"]}
    facts_of = n.alert.execution
    assert facts_of is not None
    assert facts["Source"] == "prod"
    assert facts["Execution"] == f"agent {facts_of.id} (failed)"
    assert facts["Responder"] == "Support Bot"
    assert facts["Status"] == "FIRING · critical"
    assert (facts["Credits"], facts["Duration"]) == ("12.5", "42s")
    assert facts["Step"] == "Look up the customer (tool-call, http)"
    shown = [unescape(t) for t in texts_of(card["body"])]
    assert "Tool 'crm.lookup' failed: HTTP 502 from upstream" in shown
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open execution", "url": n.alert.link},
        {"type": "Action.OpenUrl", "title": "Runbook", "url": RUNBOOK},
    ]


@pytest.mark.parametrize(
    ("severity", "kind", "style"),
    [
        ("critical", "firing", "attention"),
        ("warning", "firing", "warning"),
        ("info", "reminder", "accent"),
        ("critical", "resolved", "good"),
    ],
)
def test_the_heading_is_styled_by_severity(severity: Any, kind: Any, style: str) -> None:
    alert = make_alert(severity=severity, state="resolved" if kind == "resolved" else "firing")
    message = teams_message([make_notification(alert, kind=kind)])
    assert message["attachments"][0]["content"]["body"][0]["style"] == style


def test_markdown_in_alert_text_stays_text() -> None:
    evil = "**urgent** [login here](https://evil.example) `x` <b>\n- item\n1. first"
    n = firing(summary=evil, error_excerpt=evil)
    message = teams_message([n])
    card = message["attachments"][0]["content"]
    assert card_errors(card) == []
    for text in texts_of(card["body"]):
        assert "](" not in text.replace("\\](", "")
        assert "**" not in text.replace("\\*", "")
    assert plain("[a](b)") == r"\[a\](b)"
    assert plain("- item\n1. first\n# head") == "\\- item\n1\\. first\n\\# head"
    assert plain("execution-failed (12.5)") == "execution-failed (12.5)"
    assert "evil.example" not in str(card.get("actions"))


@given(st.text(max_size=200))
def test_plain_escapes_every_markdown_character(text: str) -> None:
    escaped = plain(text)
    assert unescape(escaped).replace("\\", "") == text.replace("\\", "")
    index = 0
    while index < len(escaped):
        if escaped[index] == "\\":
            index += 2  # an escape and what it escapes
            continue
        assert escaped[index] not in _MARKDOWN_CHARS, (text, escaped)
        index += 1


async def test_a_burst_lists_as_many_as_fit_then_counts_the_rest() -> None:
    burst = [firing(summary="Agent failed " + "x" * 500) for _ in range(100)]
    async with FakeTeams() as teams:
        await send(teams, burst)
    assert teams.refused == []
    (post,) = teams.posts
    assert post.size_bytes <= TEAMS_LIMIT_BYTES
    body = post.card["body"]
    shown = [item for item in body[1:] if item["type"] == "Container"]
    assert 10 < len(shown) < 100
    more = unescape(body[-1]["text"])
    assert more.startswith(f"…and {100 - len(shown)} more")
    assert (
        unescape(body[0]["items"][0]["text"]) == "100 alerts: 100 critical"
    )  # as every sink titles a burst


async def test_a_route_group_is_one_card_titled_by_its_digest(store: Store) -> None:
    async with FakeTeams() as teams:
        sink = TeamsSink("teams", teams_settings(teams.webhook_url))
        try:
            burst = await deliver_group(sink, store)
        finally:
            await sink.aclose()
    (post,) = teams.posts
    body = post.card["body"]
    assert unescape(body[0]["items"][0]["text"]) == TITLE
    buttons = [a["url"] for item in body[1:] for a in item["items"][-1].get("actions", [])]
    assert buttons == [n.alert.link for n in burst]  # seven small ones all fit


notification_texts = st.text(st.characters(codec="utf-8"), max_size=4000)


@settings(max_examples=25, deadline=None)
@given(
    summary=notification_texts,
    error=notification_texts,
    description=notification_texts,
    count=st.integers(1, 40),
)
def test_every_card_is_valid_and_within_the_limit(
    summary: str, error: str, description: str, count: int
) -> None:
    alert = dataclasses.replace(
        make_alert(error_excerpt=error), summary=summary, description=description
    )
    notifications = [make_notification(alert) for _ in range(count)]
    message = teams_message(notifications)
    assert len(encode_message(message)) <= TEAMS_MAX_BODY_BYTES
    assert card_errors(message["attachments"][0]["content"]) == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (408, True), (429, True), (502, True)]
)
async def test_answers_are_classified(status: int, retryable: bool) -> None:
    async with FakeTeams(status=status) as teams:
        with pytest.raises(SinkError) as caught:
            await send(teams, [firing()])
    assert caught.value.retryable is retryable
    assert TEAMS_SIG not in str(caught.value)
    if not retryable:
        assert "sinks.teams.webhook_url" in str(caught.value)


async def test_accepted_is_delivered() -> None:
    async with FakeTeams(status=202) as teams:
        await send(teams, [make_notification(make_alert(state="resolved"), kind="resolved")])
    assert teams.posts[0].card["body"][0]["style"] == "good"


def test_webhook_url_must_be_https_off_the_machine() -> None:
    url = f"http://prod-00.westeurope.logic.azure.com/workflows/x?sig={TEAMS_SIG}"
    with pytest.raises(ValidationError) as caught:
        teams_settings(url)
    assert "webhook_url" in str(caught.value)
    assert TEAMS_SIG not in str(caught.value)
    assert teams_settings(url.replace("http://", "https://")).group_wait.total_seconds() == 10


def test_repr_hides_the_url() -> None:
    sink = TeamsSink("teams", teams_settings(f"https://x.example/w?sig={TEAMS_SIG}"))
    assert TEAMS_SIG not in repr(sink)


def test_wide_characters_everywhere_still_fit() -> None:
    wide = "\U0001d518" * 5000  # four bytes each in UTF-8
    alert = make_alert(error_excerpt=wide, summary=wide)
    facts = alert.execution
    assert facts is not None
    assert alert.cause is not None
    alert = dataclasses.replace(
        alert,
        description=wide,
        execution=dataclasses.replace(facts, id=wide, status=wide),
        cause=dataclasses.replace(alert.cause, step_label=wide, chain=(wide, wide)),
        labels={**alert.labels, "responder": wide, **{f"l{i}": wide for i in range(9)}},
        annotations={f"a{i}": wide for i in range(9)},
    )
    message = teams_message([make_notification(alert)])
    assert len(encode_message(message)) <= TEAMS_MAX_BODY_BYTES
    card = message["attachments"][0]["content"]
    assert card_errors(card) == []
    assert card["actions"][0]["title"] == "Open execution"  # the way to the rest


async def test_a_burst_within_group_wait_is_one_digest(store: Store) -> None:
    burst = [firing() for _ in range(30)]
    burst = [dataclasses.replace(n, sink="teams") for n in burst]
    await enqueue(store, burst, at=T0)  # type: ignore[arg-type]
    clock = ManualClock(T0)
    async with FakeTeams() as teams:
        sink = TeamsSink("teams", teams_settings(teams.webhook_url))
        try:
            worker = worker_on(sink, store, clock)
            assert (await worker.step()).next_wake_at == T0 + timedelta(seconds=10)
            clock.set(T0 + timedelta(seconds=10))
            result = await worker.step()
        finally:
            await sink.aclose()
    assert (result.messages, result.outcomes) == (1, {"delivered": 30})
    (post,) = teams.posts
    assert unescape(post.card["body"][0]["items"][0]["text"]) == "30 alerts: 30 critical"


async def test_a_multi_line_error_keeps_its_lines_in_teams() -> None:
    # A TextBlock breaks a line only at a blank line ("\n\n"): one "\n" renders as a space.
    n = firing(error_excerpt="Traceback (most recent call last):\n  File x\r\nKeyError: 'id'")
    async with FakeTeams() as teams:
        await send(teams, [n])
    assert teams.refused == []
    (post,) = teams.posts
    [error] = [t for t in texts_of(post.card["body"]) if "Traceback" in t]
    assert unescape(error).split("\n\n") == [
        "Traceback (most recent call last):",
        "  File x",
        "KeyError: 'id'",
    ]
