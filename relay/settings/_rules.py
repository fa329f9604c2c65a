"""Rules: what to alert on (config-defined silences are in `_silences`).

Invariants:
- A rule has at least one condition in `when`.
- A windowed rule (`window:` set) has an aggregate condition (`failure_ratio`,
  `credits_sum` or `count`) and no per-execution timing condition (`running_for`,
  `duration`); a per-execution rule has no aggregate condition and no `group_by`.
- A threshold has exactly one of `gt` and `gte`.
- A rule's `labels` and `annotations` have label names (`LABEL_NAME`), non-empty
  values, and never a name the relay sets itself (`RESERVED_LABELS`,
  `RESERVED_ANNOTATIONS`); `annotations.runbook_url` is an http(s) URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from relay.settings._base import (
    Name,
    OneOrMany,
    PositiveDuration,
    Section,
    Template,
    check_http_url,
    label_problems,
    listed_twice,
    raise_problems,
)
from relay.vocab import (
    RESERVED_ANNOTATIONS,
    RESERVED_LABELS,
    RUNBOOK_ANNOTATION,
    ExecutionKind,
    ExecutionStatus,
    FromStatus,
    Severity,
)

OriginType = Literal[
    "api",
    "chat-message",
    "delegation",
    "agentic-execution-node",
    "webhook-request",
    "agent-tool-request",
]
GroupKey = Literal["responder_id", "agent_id", "workflow_id", "type"]

Problems = list[tuple[tuple[str | int, ...], str]]


class Threshold(Section):
    """`{gt: X}` or `{gte: X}`."""

    gt: float | None = None
    gte: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Threshold:
        if (self.gt is None) == (self.gte is None):
            raise ValueError("give exactly one of gt or gte")
        return self

    def holds(self, value: float) -> bool:
        if self.gt is not None:
            return value > self.gt
        return self.gte is not None and value >= self.gte


class RatioThreshold(Threshold):
    gt: float | None = Field(default=None, ge=0, le=1)
    gte: float | None = Field(default=None, ge=0, le=1)


class CountThreshold(Threshold):
    """How many executions in the window; `statuses` narrows which ones count."""

    gt: int | None = Field(default=None, ge=0)
    gte: int | None = Field(default=None, ge=0)
    statuses: Annotated[list[ExecutionStatus], OneOrMany, Field(min_length=1)] | None = None


class DurationThreshold(Section):
    gt: PositiveDuration


# Conditions that only make sense over a window, and those that only make sense for
# one execution at a time.
WINDOW_ONLY_CONDITIONS = ("failure_ratio", "min_executions", "credits_sum", "count")
AGGREGATE_CONDITIONS = ("failure_ratio", "credits_sum", "count")
PER_EXECUTION_ONLY_CONDITIONS = ("running_for", "duration")


class WhenSettings(Section):
    """Conditions of a rule; all that are given must hold (omitted ones match anything)."""

    status: Annotated[list[ExecutionStatus], OneOrMany, Field(min_length=1)] | None = None
    from_status: Annotated[list[FromStatus], OneOrMany, Field(min_length=1)] | None = None
    types: Annotated[list[ExecutionKind], OneOrMany, Field(min_length=1)] | None = None
    responder_ids: Annotated[list[str], OneOrMany, Field(min_length=1)] | None = None
    agent_ids: Annotated[list[str], OneOrMany, Field(min_length=1)] | None = None
    workflow_ids: Annotated[list[str], OneOrMany, Field(min_length=1)] | None = None
    origin_types: Annotated[list[OriginType], OneOrMany, Field(min_length=1)] | None = None
    is_agentic: bool | None = None
    root_only: bool = False
    credits_used: Threshold | None = None
    running_for: DurationThreshold | None = None
    duration: DurationThreshold | None = None
    failure_ratio: RatioThreshold | None = None
    min_executions: int | None = Field(default=None, ge=1)
    credits_sum: Threshold | None = None
    count: CountThreshold | None = None

    def conditions(self) -> list[str]:
        """Names of the conditions given (`root_only: false` is no condition)."""
        return [
            name for name in type(self).model_fields if getattr(self, name) not in (None, False)
        ]


class RuleSettings(Section):
    name: Name
    severity: Severity
    # Optional once `routes:` exist (the settings check that); always notified.
    sinks: Annotated[list[Name], OneOrMany] = Field(default_factory=list)
    when: WhenSettings
    window: PositiveDuration | None = None
    group_by: Annotated[list[GroupKey], OneOrMany] = Field(default_factory=list)
    repeat_interval: PositiveDuration = timedelta(hours=4)
    summary: Template | None = None
    description: Template | None = None
    include_input: bool = False
    # Carried to every sink; `labels` join the alert's own (routes and silences match
    # on them), `annotations` are shown (`runbook_url` as a link).
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def windowed(self) -> bool:
        return self.window is not None

    @model_validator(mode="after")
    def _coherent(self) -> RuleSettings:
        problems: Problems = []
        given = self.when.conditions()
        if not given:
            problems.append((("when",), "add at least one condition, like status: [failed]"))
        if self.window is None:
            problems.extend(
                (("when", name), "only for windowed rules: add window: (like 15m) to the rule")
                for name in given
                if name in WINDOW_ONLY_CONDITIONS
            )
            if self.group_by:
                problems.append(
                    (("group_by",), "only for windowed rules: add window: (like 15m) to the rule")
                )
        else:
            problems.extend(
                (("when", name), "not for windowed rules: it applies to one execution at a time")
                for name in given
                if name in PER_EXECUTION_ONLY_CONDITIONS
            )
            if given and not any(name in AGGREGATE_CONDITIONS for name in given):
                problems.append(
                    (("when",), "a windowed rule needs failure_ratio, credits_sum or count")
                )
        if self.when.running_for is not None and self.when.status not in (None, ["running"]):
            problems.append(
                (
                    ("when", "running_for"),
                    "applies to running executions: use status: [running] or leave status out",
                )
            )
        problems.extend(
            label_problems(self.labels, field="labels", reserved=RESERVED_LABELS, noun="label")
        )
        problems.extend(
            label_problems(
                self.annotations,
                field="annotations",
                reserved=RESERVED_ANNOTATIONS,
                noun="annotation",
            )
        )
        runbook = self.annotations.get(RUNBOOK_ANNOTATION)
        if runbook is not None and runbook.strip():
            try:
                check_http_url(runbook)
            except ValueError as exc:
                problems.append((("annotations", RUNBOOK_ANNOTATION), str(exc)))
        problems.extend(listed_twice(self.sinks, "sinks", "sink"))
        problems.extend(listed_twice(self.group_by, "group_by", "key"))
        raise_problems(problems, title="RuleSettings")
        return self
