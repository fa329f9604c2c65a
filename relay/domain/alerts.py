"""Alerts and the notifications that carry them to sinks.

Invariants:
- An alert's `id` is stable: the same rule firing for the same execution (or the same
  group in the same episode) always gets the same id, across restarts and replicas.
- A notification's `id` (sent as `webhook-id`) is derived from the alert id and what
  the notification says (firing, the n-th reminder, resolved), so it is the same on
  every delivery attempt, and a resolve never shares the id of its firing.
- `labels` hold the relay's own (bounded) labels, a rule's `labels` (which never
  replace the relay's) and `responder`, the responder's configured name, when known.
- Alerts carry no execution inputs, and the error excerpt in `cause` is already
  bounded and redacted: nothing downstream needs to scrub them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from relay.vocab import RESERVED_LABELS, AlertState, NotificationKind, Severity


def alert_id(*parts: str) -> str:
    """A short stable id from the parts that identify an alert (rule, source, subject, episode)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"alert_{digest[:24]}"


def execution_alert_id(*, rule: str, source: str, execution_id: str) -> str:
    """Per-execution rules fire at most once per execution per rule: no episode needed."""
    return alert_id(rule, source, execution_id)


def group_alert_id(*, rule: str, source: str, group_key: str, episode: int) -> str:
    """Windowed rules fire once per episode (firing -> resolved) of each group."""
    return alert_id(rule, source, group_key, str(episode))


def notification_id(alert: str, kind: NotificationKind, sequence: int = 0) -> str:
    """`msg_<alert>_<kind>[_<n>]`: stable across attempts, distinct per notification."""
    suffix = f"_{sequence}" if kind == "reminder" else ""
    return f"msg_{alert.removeprefix('alert_')}_{kind}{suffix}"


@dataclass(frozen=True, slots=True)
class FailureCause:
    """What failed inside an execution: the failing step, and where it led.

    `chain` lists execution ids from the alerted execution down to the deepest failing
    child (just the execution itself when no child is involved).
    """

    step_label: str | None
    step_type: str | None  # "iteration" | "tool-call" | "workflow-node" | other
    tool_type: str | None = None
    node_type: str | None = None
    model: str | None = None
    error_excerpt: str | None = None
    chain: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutionFacts:
    """The parts of an execution an alert shows (never its inputs)."""

    id: str
    kind: str  # agent | squad | workflow
    status: str
    responder_id: str
    agent_id: str | None
    workflow_id: str | None
    parent_id: str | None
    origin_type: str | None
    credits_used: float
    started_at: datetime
    ended_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a per-execution rule that fired, or one episode of a windowed group."""

    id: str
    rule: str
    severity: Severity
    state: AlertState
    source: str
    summary: str  # one line
    description: str
    started_at: datetime  # when the condition was observed
    labels: Mapping[str, str] = field(default_factory=dict)  # bounded: no execution ids
    execution: ExecutionFacts | None = None  # per-execution rules
    cause: FailureCause | None = None
    link: str | None = None
    group: Mapping[str, str] | None = None  # windowed rules: the group_by values
    value: float | None = None  # windowed rules: the measured ratio, sum or count
    ended_at: datetime | None = None  # when a windowed alert resolved
    # A firing windowed alert is notified again (a reminder) by this time at the latest;
    # receivers that expire alerts (Alertmanager) keep it firing until then.
    renew_by: datetime | None = None
    silenced_by: str | None = None  # id of the silence that matched, if any
    # The rule's annotations (`runbook_url`, ...): shown by sinks, never matched on.
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Routes whose time intervals held this alert back from some sinks (never replayed):
    # what its firing held back (kept in every later version: it decides where the
    # reminders and the resolve go), then what the latest reminder or resolve held back.
    muted: tuple[MutedRoute, ...] = ()

    @property
    def rule_labels(self) -> dict[str, str]:
        """The labels the rule added: those the relay does not set itself."""
        return {k: v for k, v in self.labels.items() if k not in RESERVED_LABELS}

    @property
    def responder(self) -> str | None:
        """Who the alert is about, in words people know: the responder's configured name
        (the `responder` label), else its id; None when the alert is about no one."""
        name = self.labels.get("responder")
        if name:
            return name
        if self.execution is not None:
            return self.execution.responder_id
        return self.labels.get("responder_id") or None


@dataclass(frozen=True, slots=True)
class MutedRoute:
    """A route that matched an alert but sent nothing: its mute interval contained the
    moment, or none of its active intervals did, or (for a reminder or a resolve) the
    sinks never got the alert's firing. `sinks` are those it held back (ones another
    route or the rule itself notified are not listed); `kind` is the notification it
    held back: entries of kind "firing" say which sinks never heard of the alert."""

    route: str  # the route's name, or `routes[i]`
    sinks: tuple[str, ...]
    reason: str  # "in weekends" | "outside business-hours" | "firing held back in weekends"
    kind: NotificationKind = "firing"


def route_group_key(*, route: str, values: Mapping[str, str]) -> str:
    """The stable key of one group of a route: the route's id and its `group_by` values.

    The same on every replica and restart, so notifications of one group enqueued in
    different cycles find each other in the outbox."""
    parts = [route, *(f"{name}={values[name]}" for name in sorted(values))]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"grp_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class NotificationGroup:
    """The route group a notification belongs to: notifications of one group (one sink)
    that arrive within `wait_s` of each other go out as one message."""

    key: str  # `route_group_key`
    wait_s: float
    route: str  # the route's name (or `routes[i]`), for messages and logs
    values: Mapping[str, str] = field(default_factory=dict)  # the `group_by` labels


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about an alert for one sink; the unit of the outbox."""

    id: str  # the `webhook-id`; see `notification_id`
    sink: str
    kind: NotificationKind
    alert: Alert  # the alert as it was when the notification was created
    created_at: datetime
    group: NotificationGroup | None = None  # set by a route with `group_by`

    @classmethod
    def about(
        cls,
        alert: Alert,
        *,
        sink: str,
        kind: NotificationKind,
        created_at: datetime,
        sequence: int = 0,
        group: NotificationGroup | None = None,
    ) -> Notification:
        return cls(
            id=notification_id(alert.id, kind, sequence),
            sink=sink,
            kind=kind,
            alert=alert,
            created_at=created_at,
            group=group,
        )
