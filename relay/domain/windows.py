"""Windowed rules: per-group state over a sliding window, firing -> resolved.

Pure: the caller passes the executions of the window (those that ended within the
largest window, plus the running ones), the group states of the previous cycle, and
`RuleContext.now`.

Invariants of a group (rule, group key) of one source:
- Episodes count up from 1 and never repeat: each firing starts episode `n + 1`, and
  its alert id is `group_alert_id(rule, source, group_key, episode)`, so a new
  episode never collides with an old alert or its notifications.
- A group notifies "firing" when its condition starts to hold; while it keeps holding,
  a "reminder" (sequence 1, 2, ...) whenever `repeat_interval` has passed since the
  last notification; "resolved" once, when the condition stops holding. A group never
  resolves without having fired, and never fires twice in one episode.
- A group that has no executions in the window measures zeros, so a firing group
  whose executions all left the window resolves.
- States are returned only when they changed (or are new); the caller keeps the others
  as they were. Rules that are not windowed, and states of other sources or of rules
  no longer configured, are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from relay.domain.aggregate import (
    WindowMeasure,
    condition_holds,
    measure_groups,
    primary_value,
)
from relay.domain.alerts import Alert, group_alert_id
from relay.domain.render_text import (
    WindowFinding,
    build_link,
    group_labels,
    window_description,
    window_summary,
)
from relay.domain.state import TrackedExecution
from relay.vocab import NotificationKind

if TYPE_CHECKING:
    from relay.domain.rules import RuleContext
    from relay.settings import RuleSettings

__all__ = ["GroupState", "WindowOutcome", "evaluate_windows", "step"]


@dataclass(frozen=True, slots=True)
class GroupState:
    """The lifecycle of one group of one windowed rule of one source."""

    rule: str
    source: str
    group_key: str
    group: Mapping[str, str]
    firing: bool = False
    episode: int = 0  # the current (or last) episode; 0 before the first firing
    fired_at: datetime | None = None  # when the current (or last) episode fired
    last_notified_at: datetime | None = None  # firing or last reminder
    reminders_sent: int = 0  # in the current (or last) episode
    value: float | None = None  # the last measured value
    resolved_at: datetime | None = None  # when the last episode resolved

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.group_key)


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """New or changed group states, and (alert, notification kind, sequence) to send."""

    states: list[GroupState] = field(default_factory=list)
    alerts: list[tuple[Alert, NotificationKind, int]] = field(default_factory=list)


def step(
    state: GroupState,
    *,
    holds: bool,
    value: float | None,
    now: datetime,
    repeat_interval: timedelta,
) -> tuple[GroupState, NotificationKind | None, int]:
    """One cycle of a group's lifecycle: its new state and what to notify (if anything)."""
    if not state.firing:
        if not holds:
            return replace(state, value=value), None, 0
        fired = replace(
            state,
            firing=True,
            episode=state.episode + 1,
            fired_at=now,
            last_notified_at=now,
            reminders_sent=0,
            value=value,
            resolved_at=None,
        )
        return fired, "firing", 0
    if not holds:
        return replace(state, firing=False, resolved_at=now, value=value), "resolved", 0
    last = state.last_notified_at
    if last is None or now - last >= repeat_interval:
        sequence = state.reminders_sent + 1
        reminded = replace(state, last_notified_at=now, reminders_sent=sequence, value=value)
        return reminded, "reminder", sequence
    return replace(state, value=value), None, 0


def evaluate_windows(
    rules: Sequence[RuleSettings],
    executions: Sequence[TrackedExecution],
    previous: Mapping[tuple[str, str], GroupState],
    *,
    ctx: RuleContext,
) -> WindowOutcome:
    """Measure every group of every windowed rule and move it along its lifecycle."""
    mine = [e for e in executions if e.source == ctx.source]
    outcome = WindowOutcome()
    for rule in rules:
        if rule.window is None:
            continue
        measured = measure_groups(rule, mine, now=ctx.now)
        known = {
            state.group_key: state
            for (rule_name, _), state in previous.items()
            if rule_name == rule.name and state.source == ctx.source
        }
        for key in sorted(set(measured) | set(known)):
            before = known.get(key)
            group, measure = measured.get(key, (None, WindowMeasure()))
            if before is None:
                assert group is not None  # a key not known before was measured
                before = GroupState(rule=rule.name, source=ctx.source, group_key=key, group=group)
            state, kind, sequence = step(
                before,
                holds=condition_holds(rule.when, measure),
                value=primary_value(rule.when, measure),
                now=ctx.now,
                repeat_interval=rule.repeat_interval,
            )
            if key not in known or state != before:
                outcome.states.append(state)
            if kind is not None:
                alert = _group_alert(rule, state, measure, ctx=ctx)
                outcome.alerts.append((alert, kind, sequence))
    return outcome


def _group_alert(
    rule: RuleSettings, state: GroupState, measure: WindowMeasure, *, ctx: RuleContext
) -> Alert:
    firing = state.firing
    finding = WindowFinding(
        rule=rule,
        source=ctx.source,
        group=state.group,
        measure=measure,
        state="firing" if firing else "resolved",
        responder_names=ctx.responder_names,
    )
    assert state.fired_at is not None  # only a group that fired notifies
    return Alert(
        id=group_alert_id(
            rule=rule.name, source=ctx.source, group_key=state.group_key, episode=state.episode
        ),
        rule=rule.name,
        severity=rule.severity,
        state=finding.state,
        source=ctx.source,
        summary=window_summary(finding),
        description=window_description(finding),
        started_at=state.fired_at,
        labels=group_labels(finding),
        link=build_link(ctx.link_template, {"source": ctx.source, **state.group}),
        group=dict(state.group),
        value=state.value,
        ended_at=None if firing else state.resolved_at,
        renew_by=ctx.now + rule.repeat_interval if firing else None,
        annotations=dict(rule.annotations),
    )
