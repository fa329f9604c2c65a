"""Acknowledgements: someone said "I am on it" about an alert.

Pure: no I/O; times are passed in.

Invariants:
- An alert is acknowledged at most once: the first acknowledgement stays (who, when,
  why), a second one changes nothing, so a retried click or API call is harmless.
- An acknowledged alert sends no reminders; its resolve is still sent (the people who
  were paged learn that it is over). A windowed group's new episode is a new alert
  (a new id), and so is not acknowledged.
- `by` names a person and where they acted from: `alice (slack:U0123)`, `admin`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from relay.domain.alerts import Alert
from relay.vocab import NotificationKind

__all__ = [
    "MAX_ACK_BY_CHARS",
    "MAX_ACK_COMMENT_CHARS",
    "Acknowledgement",
    "slack_actor",
    "without_acknowledged_reminders",
]

MAX_ACK_BY_CHARS = 200
MAX_ACK_COMMENT_CHARS = 1000

_Extra = TypeVar("_Extra")


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who acknowledged an alert, when, and what they said about it."""

    by: str
    at: datetime
    comment: str = ""


def slack_actor(*, user_id: str, name: str) -> str:
    """How a Slack user is named as a creator: `alice (slack:U0123)`, bounded."""
    who = " ".join(name.split()) or user_id
    return f"{who} (slack:{user_id})"[:MAX_ACK_BY_CHARS]


def without_acknowledged_reminders(
    triples: Iterable[tuple[Alert, NotificationKind, _Extra]],
    acknowledged: Collection[str],
) -> list[tuple[Alert, NotificationKind, _Extra]]:
    """The (alert, kind, sequence) triples to notify, minus the reminders of
    acknowledged alerts; firings and resolves are kept whatever the acknowledgement."""
    return [
        triple
        for triple in triples
        if not (triple[1] == "reminder" and triple[0].id in acknowledged)
    ]
