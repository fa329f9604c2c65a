"""Acting on alerts, the pure part: the buttons' vocabulary, the silence a click makes,
the reminders an acknowledgement skips, and the buttons in Slack messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.acks import slack_actor, without_acknowledged_reminders
from relay.domain.actions import (
    ParsedAction,
    action_id,
    done_text,
    parse_action,
    silence_for,
    silence_matchers,
)
from relay.domain.alerts import Notification
from relay.sinks.slack_blocks import ACTIONS_BLOCK_ID, slack_message
from relay.vocab import NotificationKind
from tests.delivery_kit import make_alert

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("action_id_text", "value", "expected"),
    [
        ("relay_ack", "alert_1", ParsedAction("ack", "alert_1")),
        ("relay_silence_1h", "alert_1", ParsedAction("silence_1h", "alert_1")),
        ("relay_silence_24h", "alert_2", ParsedAction("silence_24h", "alert_2")),
        ("relay_silence_2h", "alert_1", None),
        ("ack", "alert_1", None),
        ("open", "alert_1", None),
        ("relay_ack", "", None),
        ("relay_ack", "x" * 2001, None),
        ("relay_ack", "alert\n1", None),
        (None, "alert_1", None),
        ("relay_ack", 7, None),
    ],
)
def test_parse_action(action_id_text: object, value: object, expected: object) -> None:
    assert parse_action(action_id_text, value) == expected


def test_action_ids_parse_back() -> None:
    for action in ("ack", "silence_1h", "silence_24h"):
        assert parse_action(action_id(action), "alert_x") == ParsedAction(action, "alert_x")


def test_a_per_execution_alert_is_silenced_by_rule_source_and_responder() -> None:
    alert = make_alert(rule="execution-failed", source="prod")
    assert alert.execution is not None
    assert [str(m) for m in silence_matchers(alert)] == [
        'rule="execution-failed"',
        'source="prod"',
        f'responder_id="{alert.execution.responder_id}"',
    ]


def test_a_windowed_alert_is_silenced_by_rule_source_and_group() -> None:
    alert = make_alert(rule="spike", windowed=True)
    assert alert.group is not None
    [(name, value)] = alert.group.items()
    assert [str(m) for m in silence_matchers(alert)] == [
        'rule="spike"',
        'source="prod"',
        f'{name}="{value}"',
    ]
    other_group = replace(alert, labels={**alert.labels, name: "someone-else"})
    silence = silence_for(
        alert, action="silence_1h", now=NOW, creator="alice (slack:U1)", comment="c", click="1.2"
    )
    assert silence.matches(alert.labels)
    assert not silence.matches(other_group.labels)
    assert silence.ends_at - silence.starts_at == timedelta(hours=1)
    assert silence.creator == "alice (slack:U1)"


def test_the_same_click_gives_the_same_silence_id() -> None:
    alert = make_alert()
    kwargs = {"now": NOW, "creator": "a", "comment": "c"}
    first = silence_for(alert, action="silence_24h", click="1.1", **kwargs)  # type: ignore[arg-type]
    again = silence_for(alert, action="silence_24h", click="1.1", **kwargs)  # type: ignore[arg-type]
    other = silence_for(alert, action="silence_24h", click="1.2", **kwargs)  # type: ignore[arg-type]
    assert first.id == again.id != other.id
    assert first.ends_at == NOW + timedelta(hours=24)


def test_slack_actor_and_done_text() -> None:
    assert slack_actor(user_id="U1", name="alice") == "alice (slack:U1)"
    assert slack_actor(user_id="U1", name="  ") == "U1 (slack:U1)"
    assert len(slack_actor(user_id="U1", name="x" * 500)) == 200
    assert done_text(action="ack", by="a", at=NOW, until=None) == (
        "Acknowledged by a at 2026-03-02T09:00:00Z"
    )
    assert done_text(action="silence_1h", by="a", at=NOW, until=NOW + timedelta(hours=1)) == (
        "Silenced by a at 2026-03-02T09:00:00Z until 2026-03-02T10:00:00Z"
    )


KINDS: tuple[NotificationKind, ...] = ("firing", "reminder", "resolved")


@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(KINDS)), max_size=20),
    st.sets(st.integers(0, 5)),
)
def test_only_reminders_of_acknowledged_alerts_are_dropped(
    picks: list[tuple[int, NotificationKind]], acked: set[int]
) -> None:
    alerts = [make_alert(execution_id=f"e{n}") for n in range(6)]
    triples = [(alerts[n], kind, 0) for n, kind in picks]
    acknowledged = {alerts[n].id for n in acked}
    kept = without_acknowledged_reminders(triples, acknowledged)
    assert kept == [t for t in triples if not (t[1] == "reminder" and t[0].id in acknowledged)], (
        "order kept, nothing else dropped"
    )


# --- the buttons in Slack messages ---------------------------------------------------------


def _blocks(message: dict[str, object]) -> list[dict[str, object]]:
    [attachment] = message["attachments"]  # type: ignore[misc]
    return attachment["blocks"]  # type: ignore[no-any-return]


def _action_elements(message: dict[str, object]) -> list[dict[str, object]]:
    found = [b for b in _blocks(message) if b.get("block_id") == ACTIONS_BLOCK_ID]
    return [e for b in found for e in b["elements"]]  # type: ignore[attr-defined]


def _note(alert_kind: NotificationKind = "firing", **alert: object) -> Notification:
    return Notification.about(
        make_alert(**alert),  # type: ignore[arg-type]
        sink="oncall",
        kind=alert_kind,
        created_at=NOW,
    )


def test_a_firing_message_carries_the_three_buttons_only_when_asked() -> None:
    note = _note()
    buttons = _action_elements(slack_message([note], actions=True))
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("relay_ack", note.alert.id),
        ("relay_silence_1h", note.alert.id),
        ("relay_silence_24h", note.alert.id),
    ]
    assert [b["text"]["text"] for b in buttons] == [  # type: ignore[index]
        "Acknowledge",
        "Silence 1h",
        "Silence 24h",
    ]
    assert _action_elements(slack_message([note])) == []


def test_resolved_reminder_and_digest_messages_carry_no_buttons() -> None:
    resolved = _note("resolved", state="resolved")
    assert _action_elements(slack_message([resolved], actions=True)) == []
    reminder = _note("reminder", windowed=True)
    assert _action_elements(slack_message([reminder], actions=True)) == []
    assert _action_elements(slack_message([_note(), _note()], actions=True)) == []


def test_done_replaces_the_buttons_with_its_line() -> None:
    note = _note()
    message = slack_message([note], actions=True, done="Acknowledged by <alice> at t")
    assert _action_elements(message) == []
    texts = [str(b) for b in _blocks(message)]
    assert any("Acknowledged by &lt;alice&gt; at t" in t for t in texts), "escaped"
    assert any(note.alert.summary in t for t in texts), "the alert content stays"
