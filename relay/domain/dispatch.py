"""From alerts to notifications: one per sink the alert reaches (its rule's own sinks
and those of the routes it matches, see `relay.domain.routes`), unless a silence matches.

Invariants:
- A silenced alert yields no notification; it comes back with `silenced_by` set so the
  caller records (and counts) it. Nothing is queued for it later, not even when the
  silence is expired: what a silence muted is never replayed.
- A sink is notified at most once per alert; a sink reached through a grouped route
  carries that route's `NotificationGroup`.
- What muted routes held back is recorded on the alert (`Alert.muted`), which comes back
  in `Dispatch.muted`; it is never queued, so nothing is replayed when the mute ends.
- A reminder or resolve follows its firing per sink (`relay.domain.routes.sends`): given
  the alert as last recorded (`previous`), a sink whose firing was held back hears
  nothing more of the alert, and one that got it gets the resolve, muted or not. The
  alert keeps what its firing held back (entries of kind "firing") in every later
  version, followed by what this notification held back.
- Without routes, an alert goes to its rule's sinks, exactly as before routes existed.
- Notification ids come from `Notification.about` (alert id + kind + sequence), so the
  same alert notified twice in the same way yields the same id, which the outbox
  ignores the second time.
- A sink with several delivery targets (an Alertmanager HA cluster: `targets`, from
  `relay.settings.delivery_targets`) gets one notification per target, all with the
  same id; each is its own outbox row (the outbox key is id + sink), delivered,
  retried and dead-lettered on its own. Routes and rules name sinks, never targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from relay.domain.alerts import Alert, Notification
from relay.domain.routes import Route, route_alert
from relay.domain.silences import Silence, matching_silence
from relay.time_intervals import TimeInterval
from relay.vocab import NotificationKind

if TYPE_CHECKING:
    from relay.settings import RuleSettings

__all__ = ["Dispatch", "as_firing", "notifications_for"]


class Dispatch(NamedTuple):
    """What to enqueue, what was silenced and what routes muted (recorded, not sent)."""

    notifications: list[Notification]
    silenced: list[Alert]
    muted: list[Alert]


def as_firing(alerts: Iterable[Alert]) -> list[tuple[Alert, NotificationKind, int]]:
    """Per-execution alerts as the (alert, kind, sequence) triples `notifications_for` takes."""
    return [(alert, "firing", 0) for alert in alerts]


def notifications_for(
    alerts_with_kind: Iterable[tuple[Alert, NotificationKind, int]],
    rules: Sequence[RuleSettings],
    *,
    silences: Sequence[Silence],
    now: datetime,
    routes: Sequence[Route] = (),
    intervals: Mapping[str, TimeInterval] | None = None,
    targets: Mapping[str, Sequence[str]] | None = None,
    previous: Mapping[str, Alert] | None = None,
) -> Dispatch:
    """One notification per sink the alert reaches (per delivery target of the sink,
    when `targets` names several), unless an active silence matches.

    `previous`: alerts as last recorded, by id (the stored version of a windowed alert
    whose reminder or resolve this is); one not in it had nothing held back at firing.
    An alert of a rule no longer configured reaches only the sinks of the routes it matches.
    """
    earlier = previous or {}
    sinks_of = {rule.name: rule.sinks for rule in rules}
    targets_of = targets or {}
    notifications: list[Notification] = []
    silenced: list[Alert] = []
    muted: list[Alert] = []
    for alert, kind, sequence in alerts_with_kind:
        before = earlier.get(alert.id) if kind != "firing" else None
        at_firing = tuple(m for m in before.muted if m.kind == "firing") if before else ()
        silence = matching_silence(alert, silences, now)
        if silence is not None:  # still saying what its firing held back, for what follows
            silenced.append(replace(alert, silenced_by=silence.id, muted=at_firing))
            continue
        routing = route_alert(
            alert.labels,
            own_sinks=sinks_of.get(alert.rule, ()),
            routes=routes,
            intervals=intervals or {},
            now=now,
            kind=kind,
            firing_muted=at_firing,
        )
        recorded = at_firing + routing.muted
        if recorded:
            muted.append(replace(alert, muted=recorded))
        notifications.extend(
            Notification.about(
                alert,
                sink=target,
                kind=kind,
                created_at=now,
                sequence=sequence,
                group=to.group,
            )
            for to in routing.destinations
            for target in targets_of.get(to.sink, (to.sink,))
        )
    return Dispatch(notifications=notifications, silenced=silenced, muted=muted)
