"""The words of an alert: labels, one-line summary, description and link.

Invariants:
- Labels are bounded: rule, severity, source, and the execution's (or group's) type,
  responder_id, agent_id, workflow_id when known; `responder` (the responder's
  configured name) when one is configured; and the rule's own `labels`, which never
  replace the relay's (settings refuse `RESERVED_LABELS`, and the relay's are written
  last). Never an execution id.
- Where a responder has a configured name, text (summaries, descriptions, group
  text) says the name; its id stays in the labels and the execution facts.
- A summary is one line of at most `SUMMARY_CHARS` characters.
- Text taken from executions (error excerpts, opted-in inputs) arrives here already
  redacted and bounded; nothing here reads inputs or outputs.
- A rule's own `summary`/`description` template is used when it renders; a template
  naming an unknown placeholder falls back to the default text rather than failing
  the cycle. Templates see only the values listed by `execution_values` and
  `window_values`.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from relay.domain.aggregate import WindowMeasure
from relay.domain.alerts import ExecutionFacts, FailureCause
from relay.domain.redact import bound
from relay.durations import format_number, format_whole_duration
from relay.vocab import AlertState

if TYPE_CHECKING:
    from relay.settings import RuleSettings, Threshold

SUMMARY_CHARS = 300
_SHORT_ID_CHARS = 8
_FOLDED_LISTED = 10  # descendants named in a description; the rest are counted
_LABEL_KEYS = ("type", "responder_id", "agent_id", "workflow_id")
_NO_NAMES: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFinding:
    """Why a per-execution rule fired, in the terms the text needs."""

    rule: RuleSettings
    source: str
    facts: ExecutionFacts
    condition: str  # what happened, e.g. "failed" or "used 612 credits (> 500)"
    responder: str | None = None  # the responder's configured name, if any
    from_status: str | None = None  # of the status transition, when there was one
    cause: FailureCause | None = None
    folded: tuple[str, ...] = ()  # failing descendants folded into this alert (same cycle)
    input_excerpt: str | None = None  # only when the rule opts in (include_input)


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowFinding:
    """The state of one group of a windowed rule, in the terms the text needs."""

    rule: RuleSettings
    source: str
    group: Mapping[str, str]
    measure: WindowMeasure
    state: AlertState
    responder_names: Mapping[str, str] = field(default_factory=dict)

    @property
    def responder(self) -> str | None:
        """The configured name of the group's responder (grouped by responder_id)."""
        responder_id = self.group.get("responder_id")
        return None if responder_id is None else self.responder_names.get(responder_id)


# --- labels and links ---------------------------------------------------------------


def execution_labels(finding: ExecutionFinding) -> dict[str, str]:
    rule, facts = finding.rule, finding.facts
    labels = dict(rule.labels)  # first: the relay's own labels below always win
    labels |= {"rule": rule.name, "severity": rule.severity, "source": finding.source}
    labels["type"] = facts.kind
    labels["responder_id"] = facts.responder_id
    if finding.responder is not None:
        labels["responder"] = finding.responder
    if facts.agent_id is not None:
        labels["agent_id"] = facts.agent_id
    if facts.workflow_id is not None:
        labels["workflow_id"] = facts.workflow_id
    return labels


def group_labels(finding: WindowFinding) -> dict[str, str]:
    rule = finding.rule
    labels = dict(rule.labels)  # first: the relay's own labels below always win
    labels |= {"rule": rule.name, "severity": rule.severity, "source": finding.source}
    labels.update((key, value) for key, value in finding.group.items() if key in _LABEL_KEYS)
    if finding.responder is not None:
        labels["responder"] = finding.responder
    return labels


def render_template(template: str, values: Mapping[str, Any]) -> str | None:
    """`template` filled from `values`, or None if it names something `values` lacks."""
    try:
        return string.Formatter().vformat(template, (), values)
    except (KeyError, IndexError, AttributeError, ValueError, TypeError):
        return None


def build_link(template: str, values: Mapping[str, Any]) -> str | None:
    """The link of an alert, or None when the template needs a value this alert lacks."""
    link = render_template(template, values)
    return link or None


def execution_link_values(*, source: str, facts: ExecutionFacts) -> dict[str, str]:
    values = {
        "execution_id": facts.id,
        "source": source,
        "responder_id": facts.responder_id,
        "type": facts.kind,
    }
    if facts.agent_id is not None:
        values["agent_id"] = facts.agent_id
    if facts.workflow_id is not None:
        values["workflow_id"] = facts.workflow_id
    return values


# --- small formatters ---------------------------------------------------------------


def short_id(execution_id: str) -> str:
    return execution_id[:_SHORT_ID_CHARS]


def one_line(text: str, limit: int = SUMMARY_CHARS) -> str:
    return bound(" ".join(text.split()), limit)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


def threshold_text(threshold: Threshold, fmt: Any = format_number) -> str:
    if threshold.gt is not None:
        return f"> {fmt(threshold.gt)}"
    return f">= {fmt(threshold.gte)}"


def group_text(group: Mapping[str, str], responder_names: Mapping[str, str] = _NO_NAMES) -> str:
    """`responder_id=…, type=agent`; a responder with a configured name is just its name."""
    if not group:
        return "all executions"
    parts: list[str] = []
    for key, value in group.items():
        name = responder_names.get(value) if key == "responder_id" else None
        parts.append(name if name is not None else f"{key}={value}")
    return ", ".join(parts)


# --- per-execution alerts -----------------------------------------------------------


def execution_values(finding: ExecutionFinding) -> dict[str, Any]:
    """What a rule's summary/description template may name."""
    facts, cause = finding.facts, finding.cause
    values: dict[str, Any] = {
        "rule": finding.rule.name,
        "severity": finding.rule.severity,
        "source": finding.source,
        "execution_id": facts.id,
        "short_id": short_id(facts.id),
        "type": facts.kind,
        "status": facts.status,
        "from_status": finding.from_status or "",
        "responder_id": facts.responder_id,
        "responder": finding.responder or facts.responder_id,
        "agent_id": facts.agent_id or "",
        "workflow_id": facts.workflow_id or "",
        "parent_id": facts.parent_id or "",
        "origin_type": facts.origin_type or "",
        "credits_used": format_number(facts.credits_used),
        "duration": ""
        if facts.duration_s is None
        else format_whole_duration(timedelta(seconds=facts.duration_s)),
        "condition": finding.condition,
        "step": (cause.step_label if cause else None) or "",
        "error": (cause.error_excerpt if cause else None) or "",
        "chain": " -> ".join(cause.chain) if cause else facts.id,
    }
    return values


def execution_summary(finding: ExecutionFinding) -> str:
    custom = finding.rule.summary
    if custom is not None and (text := render_template(custom, execution_values(finding))):
        return one_line(text)
    facts, cause = finding.facts, finding.cause
    if finding.responder is not None:  # "Sales Qualifier agent failed"
        text = f"{finding.responder} {facts.kind} {finding.condition}"
    else:
        text = f"{facts.kind} execution {short_id(facts.id)} {finding.condition}"
    if cause is not None:
        if len(cause.chain) > 1:
            text += " in child " + " -> ".join(short_id(i) for i in cause.chain[1:])
        if cause.step_label:
            text += f" at “{cause.step_label}”"
        if cause.error_excerpt:
            text += f": {cause.error_excerpt}"
    return one_line(text)


def execution_description(finding: ExecutionFinding) -> str:
    custom = finding.rule.description
    if custom is not None and (text := render_template(custom, execution_values(finding))):
        return text
    facts, cause = finding.facts, finding.cause
    lines = [
        f"Rule: {finding.rule.name} ({finding.rule.severity})",
        f"Source: {finding.source}",
        f"Execution: {facts.id} ({facts.kind}, {facts.status})",
    ]
    if finding.from_status is not None and finding.from_status != facts.status:
        lines.append(f"Transition: {finding.from_status} -> {facts.status}")
    lines.append(f"Condition: {finding.condition}")
    if finding.responder is not None:
        lines.append(f"Responder: {finding.responder} ({facts.responder_id})")
    else:
        lines.append(f"Responder: {facts.responder_id}")
    if facts.agent_id is not None:
        lines.append(f"Agent: {facts.agent_id}")
    if facts.workflow_id is not None:
        lines.append(f"Workflow: {facts.workflow_id}")
    if facts.parent_id is not None:
        lines.append(f"Parent execution: {facts.parent_id}")
    if facts.origin_type is not None:
        lines.append(f"Origin: {facts.origin_type}")
    lines.append(f"Credits: {format_number(facts.credits_used)}")
    if facts.duration_s is not None:
        lines.append(f"Duration: {format_whole_duration(timedelta(seconds=facts.duration_s))}")
    if cause is not None:
        lines.extend(_cause_lines(cause))
    if finding.folded:
        lines.append(_folded_line(finding.folded))
    if finding.input_excerpt:
        lines.append(f"Input: {finding.input_excerpt}")
    return "\n".join(lines)


def _folded_line(folded: tuple[str, ...]) -> str:
    noun = "execution" if len(folded) == 1 else "executions"
    listed = ", ".join(folded[:_FOLDED_LISTED])
    more = len(folded) - _FOLDED_LISTED
    if more > 0:
        listed += f" and {more} more"
    return f"Also failed in the same cycle: {len(folded)} descendant {noun} ({listed})"


def _cause_lines(cause: FailureCause) -> list[str]:
    lines: list[str] = []
    if cause.step_label is not None or cause.step_type is not None:
        details = [part for part in (cause.step_type,) if part]
        if cause.tool_type:
            details.append(f"tool {cause.tool_type}")
        if cause.node_type:
            details.append(f"node {cause.node_type}")
        if cause.model:
            details.append(f"model {cause.model}")
        suffix = f" ({', '.join(details)})" if details else ""
        lines.append(f"Failing step: “{cause.step_label or 'unnamed'}”{suffix}")
    if len(cause.chain) > 1:
        lines.append(f"Chain: {' -> '.join(cause.chain)}")
    if cause.error_excerpt:
        lines.append(f"Error: {cause.error_excerpt}")
    return lines


# --- windowed alerts ----------------------------------------------------------------


def _measurements(finding: WindowFinding) -> list[str]:
    when, measure = finding.rule.when, finding.measure
    firing = finding.state == "firing"
    parts: list[str] = []
    if when.failure_ratio is not None:
        ratio = f"failure ratio {percent(measure.failure_ratio)}"
        ratio += f" ({measure.failed} of {measure.terminal} ended)"
        parts.append(_against(ratio, threshold_text(when.failure_ratio, percent), firing))
    if when.credits_sum is not None:
        used = f"{format_number(measure.credits_sum)} credits used"
        parts.append(_against(used, threshold_text(when.credits_sum), firing))
    if when.count is not None:
        which = "/".join(when.count.statuses) + " " if when.count.statuses else ""
        counted = f"{measure.count} {which}executions"
        parts.append(_against(counted, threshold_text(when.count), firing))
    return parts


def _against(measured: str, threshold: str, firing: bool) -> str:
    return f"{measured} {threshold}" if firing else f"{measured}, threshold {threshold}"


def window_values(finding: WindowFinding) -> dict[str, Any]:
    """What a windowed rule's summary/description template may name."""
    window = finding.rule.window or timedelta(0)
    values: dict[str, Any] = {
        "rule": finding.rule.name,
        "severity": finding.rule.severity,
        "source": finding.source,
        "state": finding.state,
        "window": format_whole_duration(window),
        "group": group_text(finding.group, finding.responder_names),
        "failure_ratio": percent(finding.measure.failure_ratio),
        "failed": finding.measure.failed,
        "terminal": finding.measure.terminal,
        "running": finding.measure.running,
        "credits_sum": format_number(finding.measure.credits_sum),
        "count": finding.measure.count,
        "condition": " and ".join(_measurements(finding)),
    }
    for key in _LABEL_KEYS:
        values[key] = finding.group.get(key, "")
    values["responder"] = finding.responder or values["responder_id"]
    return values


def window_summary(finding: WindowFinding) -> str:
    custom = finding.rule.summary
    if custom is not None and (text := render_template(custom, window_values(finding))):
        return one_line(text)
    values = window_values(finding)
    text = f"{values['condition']} over the last {values['window']} for {values['group']}"
    return one_line(text if finding.state == "firing" else f"resolved: {text}")


def window_description(finding: WindowFinding) -> str:
    custom = finding.rule.description
    if custom is not None and (text := render_template(custom, window_values(finding))):
        return text
    values = window_values(finding)
    measure = finding.measure
    lines = [
        f"Rule: {finding.rule.name} ({finding.rule.severity})",
        f"Source: {finding.source}",
        f"State: {finding.state}",
        f"Group: {values['group']}",
        f"Window: last {values['window']}",
        *(f"Measured: {part}" for part in _measurements(finding)),
        f"Executions in window: {measure.terminal} ended ({measure.failed} failed), "
        f"{measure.running} running",
    ]
    if finding.rule.when.min_executions is not None:
        lines.append(f"Minimum ended executions: {finding.rule.when.min_executions}")
    return "\n".join(lines)
