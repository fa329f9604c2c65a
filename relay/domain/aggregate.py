"""What a windowed rule measures: executions of the window, grouped and aggregated.

Invariants:
- An execution is *in the window* `(now - window, now]` when it ended within it (a
  terminal execution without `ended_at` counts from its last update) or when it is
  still running (and not purged: a purged execution is never re-read, so its stored
  "running" is stale). Vanished executions are never in a window.
- `failure_ratio` = failed / terminal in the window (cancelled ones count as terminal,
  not as failed); it is undefined (None) without terminal executions, and the condition
  does not hold while fewer than `min_executions` terminal executions are in the window.
- `credits_sum` adds the credits of executions that ended in the window and of those
  still running (all their credits so far: the API has no per-period breakdown).
- `count` counts executions in the window, only those in `count.statuses` if given.
- An execution without a value for one of the `group_by` keys (a workflow has no
  agent_id) is in no group of that rule.
- Every aggregate condition given in `when` must hold; filters narrow the executions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from relay.domain.matching import matches_filters
from relay.domain.state import TrackedExecution
from relay.vocab import TERMINAL_STATUSES

if TYPE_CHECKING:
    from relay.settings import RuleSettings, WhenSettings

__all__ = [
    "ALL_GROUP_KEY",
    "WindowMeasure",
    "condition_holds",
    "group_key",
    "group_of",
    "in_window",
    "measure_groups",
    "primary_value",
]

# The key of the single group of a rule without `group_by`.
ALL_GROUP_KEY = "*"


@dataclass(frozen=True, slots=True)
class WindowMeasure:
    """The aggregates of one group over one window."""

    terminal: int = 0
    failed: int = 0
    running: int = 0
    credits_sum: float = 0.0
    count: int = 0  # executions in `count.statuses` (all in the window when not given)

    @property
    def executions(self) -> int:
        return self.terminal + self.running

    @property
    def failure_ratio(self) -> float | None:
        return self.failed / self.terminal if self.terminal else None

    def add(self, execution: TrackedExecution, *, counted: bool) -> WindowMeasure:
        terminal = execution.status in TERMINAL_STATUSES
        return WindowMeasure(
            terminal=self.terminal + terminal,
            failed=self.failed + (execution.status == "failed"),
            running=self.running + (not terminal),
            credits_sum=self.credits_sum + execution.credits_used,
            count=self.count + counted,
        )


def in_window(execution: TrackedExecution, *, start: datetime, now: datetime) -> bool:
    """Whether the execution ended within `(start, now]` or is still running."""
    if execution.status == "running":
        return not execution.is_purged
    if execution.status not in TERMINAL_STATUSES:
        return False
    ended_at = execution.ended_at or execution.updated_at
    return start < ended_at <= now


def group_of(rule: RuleSettings, execution: TrackedExecution) -> dict[str, str] | None:
    """The `group_by` values of an execution, or None if it lacks one of them."""
    group: dict[str, str] = {}
    for key in rule.group_by:
        value = execution.kind if key == "type" else getattr(execution, key)
        if value is None:
            return None
        group[key] = value
    return group


def group_key(group: Mapping[str, str]) -> str:
    """A stable key for a group (part of its alert ids): `k=v|k=v` in `group_by` order."""
    if not group:
        return ALL_GROUP_KEY
    return "|".join(f"{key}={value}" for key, value in group.items())


def measure_groups(
    rule: RuleSettings, executions: Sequence[TrackedExecution], *, now: datetime
) -> dict[str, tuple[dict[str, str], WindowMeasure]]:
    """Group key -> (group values, measure) for every group with executions in the window."""
    if rule.window is None:
        raise ValueError(f"rule {rule.name!r} has no window")
    when = rule.when
    start = now - rule.window
    statuses = None if when.count is None else when.count.statuses
    found: dict[str, tuple[dict[str, str], WindowMeasure]] = {}
    for execution in executions:
        if not in_window(execution, start=start, now=now):
            continue
        if when.status is not None and execution.status not in when.status:
            continue
        if not matches_filters(when, execution):
            continue
        group = group_of(rule, execution)
        if group is None:
            continue
        key = group_key(group)
        counted = statuses is None or execution.status in statuses
        previous = found.get(key)
        measure = WindowMeasure() if previous is None else previous[1]
        found[key] = (group, measure.add(execution, counted=counted))
    return found


def condition_holds(when: WhenSettings, measure: WindowMeasure) -> bool:
    """Whether every aggregate condition of `when` holds for `measure`."""
    if when.min_executions is not None and measure.terminal < when.min_executions:
        return False
    if when.failure_ratio is not None:
        ratio = measure.failure_ratio
        if ratio is None or not when.failure_ratio.holds(ratio):
            return False
    if when.credits_sum is not None and not when.credits_sum.holds(measure.credits_sum):
        return False
    if when.count is not None and not when.count.holds(measure.count):
        return False
    return any(c is not None for c in (when.failure_ratio, when.credits_sum, when.count))


def primary_value(when: WhenSettings, measure: WindowMeasure) -> float | None:
    """The value an alert reports: the first aggregate condition's measurement."""
    if when.failure_ratio is not None:
        return measure.failure_ratio
    if when.credits_sum is not None:
        return measure.credits_sum
    if when.count is not None:
        return float(measure.count)
    return None
