"""Plain-text renderings of what a cycle found, for `zaia-relay once` and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from relay.domain.state import Transition
from relay.pipeline import CycleReport

_NO_NAMES: Mapping[str, str] = MappingProxyType({})


def format_transition(
    transition: Transition, responder_names: Mapping[str, str] = _NO_NAMES
) -> str:
    """One line; a responder with a configured name is shown by it (its id after)."""
    execution = transition.execution
    if transition.kind == "credits":
        change = f"credits {transition.credits_before:g} -> {transition.credits_after:g}"
    else:
        change = f"{transition.from_status} -> {transition.to_status}"
    flag = "" if transition.alertable else "  (baseline)"
    name = responder_names.get(execution.responder_id)
    responder = execution.responder_id if name is None else f"{name} ({execution.responder_id})"
    return (
        f"  {transition.execution_id}  {execution.kind:<8}  {change:<24}"
        f"  responder {responder}  credits {execution.credits_used:g}{flag}"
    )


def format_cycle(report: CycleReport, *, responder_names: Mapping[str, str] = _NO_NAMES) -> str:
    header = (
        f"source {report.source}: {report.pages} page(s), {report.refreshes} refresh(es), "
        f"{report.observed} execution(s) observed, {report.running} running, "
        f"{len(report.transitions)} transition(s)"
    )
    if report.first_poll:
        header += " (first poll: existing executions recorded as a baseline)"
    lines = [header]
    # A baseline can hold thousands of executions; list only what would alert, plus a count.
    shown = [t for t in report.transitions if t.alertable]
    lines.extend(format_transition(t, responder_names) for t in shown)
    hidden = len(report.transitions) - len(shown)
    if hidden:
        lines.append(f"  ... and {hidden} baseline transition(s) recorded without alerting")
    for alert in report.new_alerts:
        sinks = sorted({n.sink for n in report.notifications if n.alert.id == alert.id})
        if alert.silenced_by is not None:
            target = f"silenced by {alert.silenced_by}"
        else:
            target = f"-> {', '.join(sinks) or 'no sink'}"
        lines.append(f"  alert {alert.severity:<8} {alert.rule}: {alert.summary}  {target}")
    for alert in report.resolved_alerts:
        lines.append(f"  resolved {alert.rule}: {alert.summary}")
    for problem in report.problems:
        lines.append(
            f"  skipped invalid item #{problem.index}"
            f" ({problem.execution_id or 'no id'}): {problem.message}"
        )
    return "\n".join(lines)
