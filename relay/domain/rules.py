"""Per-execution rules: which transitions and running executions deserve an alert.

Pure: no I/O, no clock; `RuleContext.now` is the time of the cycle.

Invariants:
- Only alertable transitions alert (a baseline is recorded silently).
- A per-execution alert's id is `execution_alert_id(rule, source, execution_id)`: one
  id per rule and execution whatever the transition or cycle, so the store, which
  never overwrites an existing per-execution alert, makes each rule fire at most once
  per execution across cycles, restarts and replicas. Within one call, each rule yields
  at most one alert per execution.
- How a rule triggers follows from its conditions: with `credits_used`, on any
  transition whose credits pass the threshold (so it can fire while running); else
  only on status transitions. `status` matches the status transitioned into (for a
  credits transition, the unchanged "running"); `from_status` the status left.
  `duration` needs a transition into a terminal status that ran longer than it.
  `running_for` rules are evaluated on running executions (`evaluate_running`) and
  never on transitions; `from_status` does not apply to them (there is no transition).
- Filters (`types`, `responder_ids`, `agent_ids`, `workflow_ids`, `origin_types`,
  `is_agentic`, `root_only`) apply to every rule.
- Failure cascades of one batch give one alert, for the topmost failing execution,
  naming the chain (see `relay.domain.noise`); `root_only` drops children anyway. Only
  rules without `credits_used`/`duration` fold: a cascade is one fault, but each
  execution's credits and duration are its own.
- Inputs never reach an alert unless the rule sets `include_input`; then only as a
  redacted, bounded excerpt.

`notifications_for` (from `relay.domain.dispatch`) turns alerts into notifications.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING

from relay.domain.alerts import Alert, FailureCause, execution_alert_id
from relay.domain.cause import compact_json, failure_cause
from relay.domain.dispatch import Dispatch, as_firing, notifications_for
from relay.domain.matching import facts_of, matches_filters
from relay.domain.models import Execution
from relay.domain.noise import FAILURE_STATUSES, Cascade, fold_cascades
from relay.domain.redact import Redactor
from relay.domain.render_text import (
    ExecutionFinding,
    build_link,
    execution_description,
    execution_labels,
    execution_link_values,
    execution_summary,
    threshold_text,
)
from relay.domain.state import TrackedExecution, Transition
from relay.durations import format_number, format_whole_duration
from relay.settings import DEFAULT_LINK_TEMPLATE
from relay.vocab import TERMINAL_STATUSES

if TYPE_CHECKING:
    from relay.settings import AlertsSettings, RuleSettings

__all__ = [
    "Dispatch",
    "RuleContext",
    "as_firing",
    "evaluate_running",
    "evaluate_transitions",
    "is_per_execution",
    "notifications_for",
]

_NO_CAUSES: Mapping[str, FailureCause] = MappingProxyType({})
_NO_NAMES: Mapping[str, str] = MappingProxyType({})
_STATUS_WORDS = {
    "failed": "failed",
    "cancelled": "was cancelled",
    "completed": "completed",
    "running": "is running",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleContext:
    """What every rule evaluation of one cycle of one source shares."""

    source: str
    now: datetime
    link_template: str = DEFAULT_LINK_TEMPLATE
    redactor: Redactor = field(default_factory=Redactor)
    # responder_id -> configured name (`responders:`): alert text and the `responder`
    # label use the name; ids stay in the execution facts and the `responder_id` label.
    responder_names: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        alerts: AlertsSettings,
        *,
        source: str,
        now: datetime,
        responder_names: Mapping[str, str] = _NO_NAMES,
    ) -> RuleContext:
        return cls(
            source=source,
            now=now,
            link_template=alerts.link_template,
            redactor=Redactor.from_settings(alerts),
            responder_names=responder_names,
        )


def is_per_execution(rule: RuleSettings) -> bool:
    return rule.window is None


# --- transitions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Match:
    transition: Transition
    condition: str
    # Whether the match can fold into an ancestor's alert (see `relay.domain.noise`).
    folds: bool

    @property
    def execution(self) -> Execution:
        return self.transition.execution


def _folds(rule: RuleSettings, transition: Transition) -> bool:
    """A failure cascade is one fault; credits and durations are each execution's own."""
    when = rule.when
    return (
        transition.kind == "status"
        and transition.to_status in FAILURE_STATUSES
        and when.credits_used is None
        and when.duration is None
    )


def evaluate_transitions(
    rules: Sequence[RuleSettings],
    transitions: Sequence[Transition],
    *,
    ctx: RuleContext,
    causes: Mapping[str, FailureCause] = _NO_CAUSES,
) -> list[Alert]:
    """The alerts that per-execution rules raise for one batch (cycle) of transitions.

    `causes` may hold, by execution id, failure causes the caller already resolved
    further (through `/nestings`, see `relay.domain.cause.deepest_cause`); other
    failed or cancelled executions get theirs from their own events.
    """
    alertable = [t for t in transitions if t.alertable]
    for transition in alertable:
        if transition.source != ctx.source:
            raise ValueError(
                f"transition of source {transition.source!r} evaluated for {ctx.source!r}"
            )
    alerts: list[Alert] = []
    for rule in rules:
        if not is_per_execution(rule) or rule.when.running_for is not None:
            continue
        matched: dict[str, _Match] = {}
        for transition in alertable:
            if transition.execution_id in matched:
                continue
            condition = _condition(rule, transition)
            if condition is not None:
                folds = _folds(rule, transition)
                matched[transition.execution_id] = _Match(transition, condition, folds)
        cascades = fold_cascades({i: m.execution for i, m in matched.items() if m.folds})
        for execution_id, match in matched.items():
            cascade = cascades.get(execution_id)
            if match.folds and cascade is None:
                continue  # folded into an ancestor's alert
            alerts.append(
                _transition_alert(rule, match, cascade, matched=matched, ctx=ctx, causes=causes)
            )
    return alerts


def _condition(rule: RuleSettings, transition: Transition) -> str | None:
    """What the rule saw in this transition, or None if the rule does not fire on it."""
    when = rule.when
    execution = transition.execution
    if not matches_filters(when, execution):
        return None
    if when.status is not None and transition.to_status not in when.status:
        return None
    if when.from_status is not None and transition.from_status not in when.from_status:
        return None
    parts: list[str] = []
    if when.credits_used is not None:
        if not when.credits_used.holds(transition.credits_after):
            return None
        used = format_number(transition.credits_after)
        parts.append(f"used {used} credits ({threshold_text(when.credits_used)})")
    elif transition.kind != "status":
        return None
    if when.duration is not None:
        ended_at = execution.ended_at
        if transition.kind != "status" or transition.to_status not in TERMINAL_STATUSES:
            return None
        if ended_at is None:  # an API quirk: its last update is when it ended
            ended_at = execution.updated_at
        took = ended_at - execution.started_at
        if not took > when.duration.gt:
            return None
        limit = format_whole_duration(when.duration.gt)
        parts.append(f"took {format_whole_duration(took)} (> {limit})")
    word = _STATUS_WORDS.get(transition.to_status, transition.to_status)
    if not parts:
        return word
    tail = "still running" if transition.to_status == "running" else word
    return f"{', '.join(parts)}, {tail}"


def _own_cause(
    execution: Execution, *, ctx: RuleContext, causes: Mapping[str, FailureCause]
) -> FailureCause | None:
    given = causes.get(execution.id)
    if given is not None:
        return given
    if execution.status not in FAILURE_STATUSES:
        return None
    return failure_cause(execution, redactor=ctx.redactor)


def _cascade_cause(
    cascade: Cascade,
    *,
    matched: Mapping[str, _Match],
    ctx: RuleContext,
    causes: Mapping[str, FailureCause],
) -> FailureCause | None:
    top = matched[cascade.top].execution
    own = _own_cause(top, ctx=ctx, causes=causes)
    if len(cascade.chain) == 1 or (own is not None and len(own.chain) >= len(cascade.chain)):
        return own  # nothing folded, or the caller already followed the chain further
    deepest = matched[cascade.chain[-1]].execution
    deep = _own_cause(deepest, ctx=ctx, causes=causes)
    if deep is None:
        base = own or FailureCause(step_label=None, step_type=None)
        return replace(base, chain=cascade.chain)
    tail = deep.chain if deep.chain[:1] == (deepest.id,) else (deepest.id,)
    return replace(deep, chain=cascade.chain[:-1] + tail)


def _transition_alert(
    rule: RuleSettings,
    match: _Match,
    cascade: Cascade | None,
    *,
    matched: Mapping[str, _Match],
    ctx: RuleContext,
    causes: Mapping[str, FailureCause],
) -> Alert:
    execution = match.execution
    if cascade is not None:
        cause = _cascade_cause(cascade, matched=matched, ctx=ctx, causes=causes)
    else:
        cause = _own_cause(execution, ctx=ctx, causes=causes)
    input_excerpt = None
    if rule.include_input:
        input_excerpt = ctx.redactor.excerpt(compact_json(execution.detail.input)) or None
    finding = ExecutionFinding(
        rule=rule,
        source=ctx.source,
        facts=facts_of(execution),
        condition=match.condition,
        responder=ctx.responder_names.get(execution.responder_id),
        from_status=match.transition.from_status,
        cause=cause,
        folded=() if cascade is None else tuple(sorted(cascade.folded)),
        input_excerpt=input_excerpt,
    )
    return _execution_alert(
        finding,
        observed_at=match.transition.observed_at,
        ctx=ctx,
        workspace_id=execution.workspace_id,
    )


def _execution_alert(
    finding: ExecutionFinding,
    *,
    observed_at: datetime,
    ctx: RuleContext,
    workspace_id: str | None = None,
) -> Alert:
    facts = finding.facts
    link_values: dict[str, str] = execution_link_values(source=ctx.source, facts=facts)
    if workspace_id is not None:
        link_values["workspace_id"] = workspace_id
    return Alert(
        id=execution_alert_id(rule=finding.rule.name, source=ctx.source, execution_id=facts.id),
        rule=finding.rule.name,
        severity=finding.rule.severity,
        state="firing",
        source=ctx.source,
        summary=execution_summary(finding),
        description=execution_description(finding),
        started_at=observed_at,
        labels=execution_labels(finding),
        execution=facts,
        cause=finding.cause,
        link=build_link(ctx.link_template, link_values),
        annotations=dict(finding.rule.annotations),
    )


# --- running executions -------------------------------------------------------------


def evaluate_running(
    rules: Sequence[RuleSettings], running: Sequence[TrackedExecution], *, ctx: RuleContext
) -> list[Alert]:
    """Alerts of `running_for` rules: executions still running after a duration.

    Purged executions are skipped: the API no longer updates them, so their stored
    "running" says nothing about whether they are stuck.
    """
    alerts: list[Alert] = []
    for rule in rules:
        when = rule.when
        if not is_per_execution(rule) or when.running_for is None:
            continue
        for state in running:
            if state.source != ctx.source:
                raise ValueError(
                    f"execution of source {state.source!r} evaluated for {ctx.source!r}"
                )
            if state.status != "running" or state.is_purged:
                continue
            if when.status is not None and "running" not in when.status:
                continue
            if not matches_filters(when, state):
                continue
            if when.credits_used is not None and not when.credits_used.holds(state.credits_used):
                continue
            elapsed = ctx.now - state.started_at
            if not elapsed > when.running_for.gt:
                continue
            condition = _running_condition(elapsed, when.running_for.gt, rule=rule, state=state)
            finding = ExecutionFinding(
                rule=rule,
                source=ctx.source,
                facts=facts_of(state),
                condition=condition,
                responder=ctx.responder_names.get(state.responder_id),
            )
            alerts.append(_execution_alert(finding, observed_at=ctx.now, ctx=ctx))
    return alerts


def _running_condition(
    elapsed: timedelta, limit: timedelta, *, rule: RuleSettings, state: TrackedExecution
) -> str:
    text = f"has been running for {format_whole_duration(elapsed)}"
    text += f" (> {format_whole_duration(limit)})"
    if rule.when.credits_used is not None:
        text += (
            f" and used {format_number(state.credits_used)} credits "
            f"({threshold_text(rule.when.credits_used)})"
        )
    return text
