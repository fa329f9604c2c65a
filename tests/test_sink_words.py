"""The words every sink shares (`relay.sinks.words`): which URLs become links, the
links of an alert, the failing step. Tables; and every sink's links agree."""

from __future__ import annotations

import dataclasses

import pytest

from relay.domain.alerts import FailureCause
from relay.sinks.email_words import links as email_links
from relay.sinks.pagerduty import pagerduty_event
from relay.sinks.teams_cards import teams_message
from relay.sinks.words import alert_links, http_link, step_words
from tests.delivery_kit import make_alert, make_notification


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://app.example/x", True),
        ("http://10.0.0.1:8080/x?y=1", True),
        ("javascript:alert(1)", False),
        ("ftp://example.com/x", False),
        ("https://example.com/a b", False),
        ("https://example.com/\nx", False),
        ("https://example.com/" + "x" * 2000, False),
        ("", False),
        (None, False),
    ],
)
def test_http_link(url: str | None, shown: bool) -> None:
    assert http_link(url) == (url if shown else None)


def test_every_sink_shows_the_same_links() -> None:
    alert = dataclasses.replace(
        make_alert(), annotations={"runbook_url": "https://wiki.example/rb"}
    )
    expected = [("Open execution", str(alert.link)), ("Runbook", "https://wiki.example/rb")]
    assert alert_links(alert) == expected
    assert email_links(alert) == expected
    n = make_notification(alert, sink="s")
    assert [(x["text"], x["href"]) for x in pagerduty_event(n, routing_key="k")["links"]] == (
        expected
    )
    card = teams_message([n])["attachments"][0]["content"]
    assert [(a["title"], a["url"]) for a in card["actions"]] == expected
    unsafe = dataclasses.replace(alert, link="javascript:x", annotations={"runbook_url": "x"})
    assert alert_links(unsafe) == []


@pytest.mark.parametrize(
    ("cause", "words"),
    [
        (None, None),
        (FailureCause(None, None), None),
        (
            FailureCause("Look up", "tool-call", tool_type="http"),
            "Look up (tool-call, http)",
        ),
        (FailureCause(None, "llm", model="gpt-x"), "unnamed step (llm, gpt-x)"),
        (FailureCause("Only a label", None), "Only a label"),
    ],
)
def test_step_words(cause: FailureCause | None, words: str | None) -> None:
    assert step_words(cause) == words
