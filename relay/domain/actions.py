"""Acting on an alert from a chat message: the buttons' vocabulary and what a click does.

Pure: no I/O; times are passed in.

Invariants:
- A button's `action_id` names the action (`relay_ack`, `relay_silence_1h`,
  `relay_silence_24h`) and its `value` is the alert id (at most `MAX_VALUE_CHARS`,
  Slack's limit); `parse_action` accepts exactly those and nothing else.
- A silence from a click matches the alert's rule and source, plus: for a windowed
  alert, its group's labels (the labels its `group_by` values became); for a
  per-execution alert, its responder (`responder_id`): execution ids are no labels, so
  "this execution" cannot be matched, and the next failure of the same responder for
  the same rule is what an on-call engineer wants kept quiet.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from relay.domain.alerts import Alert
from relay.domain.silences import Silence, new_silence
from relay.durations import utc_iso
from relay.matchers import Matcher

__all__ = [
    "ACTIONS",
    "ACTION_LABELS",
    "MAX_VALUE_CHARS",
    "Action",
    "ParsedAction",
    "action_id",
    "done_text",
    "parse_action",
    "silence_for",
    "silence_matchers",
]

Action = Literal["ack", "silence_1h", "silence_24h"]
ACTIONS: tuple[Action, ...] = get_args(Action)
ACTION_LABELS: dict[Action, str] = {
    "ack": "Acknowledge",
    "silence_1h": "Silence 1h",
    "silence_24h": "Silence 24h",
}
MAX_VALUE_CHARS = 2000
_PREFIX = "relay_"
_DURATIONS: dict[Action, timedelta] = {
    "silence_1h": timedelta(hours=1),
    "silence_24h": timedelta(hours=24),
}


@dataclass(frozen=True, slots=True)
class ParsedAction:
    action: Action
    alert_id: str


def action_id(action: Action) -> str:
    """The `action_id` of the button for `action`."""
    return f"{_PREFIX}{action}"


def parse_action(action_id_text: object, value: object) -> ParsedAction | None:
    """The action a clicked button asks for, or None when it is none of ours."""
    if not isinstance(action_id_text, str) or not isinstance(value, str):
        return None
    action = _BY_ID.get(action_id_text)
    if action is None or not value or len(value) > MAX_VALUE_CHARS or not value.isprintable():
        return None
    return ParsedAction(action=action, alert_id=value)


_BY_ID: dict[str, Action] = {action_id(a): a for a in ACTIONS}


def silence_matchers(alert: Alert) -> list[Matcher]:
    """Matchers for "this alert": its rule and source, and its group (windowed) or its
    responder (per execution); see the module invariants."""
    matchers = [Matcher.equal("rule", alert.rule), Matcher.equal("source", alert.source)]
    if alert.group is not None:
        wanted = set(alert.group)
        matchers += [
            Matcher.equal(name, value)
            for name, value in sorted(alert.labels.items())
            if name in wanted and name not in ("rule", "source")
        ]
    elif alert.execution is not None:
        matchers.append(Matcher.equal("responder_id", alert.execution.responder_id))
    return matchers


def silence_for(
    alert: Alert,
    *,
    action: Action,
    now: datetime,
    creator: str,
    comment: str,
    click: str,
) -> Silence:
    """The silence a silence button creates, from `now` for its duration. `click`
    identifies the click (Slack's `action_ts`): the same click replayed gives the same
    silence id, which the store keeps once."""
    duration = _DURATIONS[action]
    digest = hashlib.sha256("\x1f".join(("click", alert.id, action, click)).encode())
    return new_silence(
        silence_matchers(alert),
        ends_at=now + duration,
        now=now,
        creator=creator,
        comment=comment,
        silence_id=f"sil_{digest.hexdigest()[:20]}",
    )


def done_text(*, action: Action, by: str, at: datetime, until: datetime | None) -> str:
    """One line saying who did what (and until when): what replaces the buttons."""
    when = utc_iso(at, timespec="seconds")
    if action == "ack":
        return f"Acknowledged by {by} at {when}"
    assert until is not None
    return f"Silenced by {by} at {when} until {utc_iso(until, timespec='seconds')}"
