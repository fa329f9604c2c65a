"""Rule filters, shared by per-execution and windowed rules.

Invariants:
- A filter left out of `when` matches everything; every filter given must match.
- Filters read only what both an API `Execution` and a stored `TrackedExecution` know
  (`Subject`), so the same rule matches the same execution whichever view is at hand.
- `is_agentic: false` is a filter (only non-agentic executions), not the absence of one.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from relay.domain.alerts import ExecutionFacts

if TYPE_CHECKING:
    from relay.settings import WhenSettings


class Subject(Protocol):
    """What rules read about an execution: an `Execution` or a `TrackedExecution`."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def responder_id(self) -> str: ...
    @property
    def agent_id(self) -> str | None: ...
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def origin_type(self) -> str | None: ...
    @property
    def is_agentic(self) -> bool: ...
    @property
    def credits_used(self) -> float: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...


def matches_filters(when: WhenSettings, subject: Subject) -> bool:
    """Whether `subject` passes every filter of `when` (status conditions excluded)."""
    if when.types is not None and subject.kind not in when.types:
        return False
    if when.responder_ids is not None and subject.responder_id not in when.responder_ids:
        return False
    if when.agent_ids is not None and subject.agent_id not in when.agent_ids:
        return False
    if when.workflow_ids is not None and subject.workflow_id not in when.workflow_ids:
        return False
    if when.origin_types is not None and subject.origin_type not in when.origin_types:
        return False
    if when.is_agentic is not None and subject.is_agentic != when.is_agentic:
        return False
    return not (when.root_only and subject.parent_id is not None)


def facts_of(subject: Subject) -> ExecutionFacts:
    """The parts of an execution an alert shows (never its inputs)."""
    return ExecutionFacts(
        id=subject.id,
        kind=subject.kind,
        status=subject.status,
        responder_id=subject.responder_id,
        agent_id=subject.agent_id,
        workflow_id=subject.workflow_id,
        parent_id=subject.parent_id,
        origin_type=subject.origin_type,
        credits_used=subject.credits_used,
        started_at=subject.started_at,
        ended_at=subject.ended_at,
    )
