"""From alerts to notifications: one per sink of the rule, unless a silence matches.

Invariants:
- A silenced alert yields no notification; it comes back with `silenced_by` set so the
  caller records (and counts) it. Nothing is queued for it later, not even when the
  silence is expired: what a silence muted is never replayed.
- Notification ids come from `Notification.about` (alert id + kind + sequence), so the
  same alert notified twice in the same way yields the same id, which the outbox
  ignores the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from relay.domain.alerts import Alert, Notification
from relay.domain.silences import Silence, matching_silence
from relay.vocab import NotificationKind

if TYPE_CHECKING:
    from relay.settings import RuleSettings

__all__ = ["Dispatch", "as_firing", "notifications_for"]


class Dispatch(NamedTuple):
    """What to enqueue, and what was silenced (recorded, not sent)."""

    notifications: list[Notification]
    silenced: list[Alert]


def as_firing(alerts: Iterable[Alert]) -> list[tuple[Alert, NotificationKind, int]]:
    """Per-execution alerts as the (alert, kind, sequence) triples `notifications_for` takes."""
    return [(alert, "firing", 0) for alert in alerts]


def notifications_for(
    alerts_with_kind: Iterable[tuple[Alert, NotificationKind, int]],
    rules: Sequence[RuleSettings],
    *,
    silences: Sequence[Silence],
    now: datetime,
) -> Dispatch:
    """One notification per sink of the alert's rule, unless an active silence matches.

    An alert of a rule no longer configured goes nowhere (no sinks to send it to).
    """
    sinks_of = {rule.name: rule.sinks for rule in rules}
    notifications: list[Notification] = []
    silenced: list[Alert] = []
    for alert, kind, sequence in alerts_with_kind:
        silence = matching_silence(alert, silences, now)
        if silence is not None:
            silenced.append(replace(alert, silenced_by=silence.id))
            continue
        notifications.extend(
            Notification.about(alert, sink=sink, kind=kind, created_at=now, sequence=sequence)
            for sink in sinks_of.get(alert.rule, ())
        )
    return Dispatch(notifications=notifications, silenced=silenced)
