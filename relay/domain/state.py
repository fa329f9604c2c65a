"""What the relay remembers about executions, and the transitions it derives.

Invariants:
- `TrackedExecution` is the stored state of one execution of one source; a cycle
  replaces it with a new value, never mutates it.
- A `Transition` is produced exactly once: it is persisted in the same store
  transaction as the state that makes it stale, so a replayed cycle compares against
  the new state and cannot produce it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from relay.domain.models import Execution
from relay.vocab import ExecutionKind

UNKNOWN_STATUS = "unknown"
TransitionKind = Literal["status", "credits"]


@dataclass(frozen=True, slots=True)
class TrackedExecution:
    """The last observed state of one execution, plus what rules need to match it."""

    source: str
    id: str
    status: str  # an ExecutionStatus, or "vanished" once the API forgets it
    credits_used: float
    kind: ExecutionKind
    responder_id: str
    parent_id: str | None
    agent_id: str | None
    workflow_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime
    ended_at: datetime | None
    is_purged: bool
    last_seen_at: datetime  # when a poll last saw it (drives round-robin refreshes)
    # Statuses a transition was already produced into: an execution that flips back and
    # forth upstream still yields at most one transition into each status.
    reported_statuses: frozenset[str] = frozenset()
    # What rule filters need beyond the fields above.
    origin_type: str | None = None
    is_agentic: bool = False

    @property
    def is_running(self) -> bool:
        return self.status == "running"

    @classmethod
    def from_execution(
        cls, execution: Execution, *, source: str, now: datetime
    ) -> TrackedExecution:
        return cls(
            source=source,
            id=execution.id,
            status=execution.status,
            credits_used=execution.credits_used,
            kind=execution.kind,
            responder_id=execution.responder_id,
            parent_id=execution.parent_id,
            agent_id=execution.agent_id,
            workflow_id=execution.workflow_id,
            created_at=execution.created_at,
            updated_at=execution.updated_at,
            started_at=execution.started_at,
            ended_at=execution.ended_at,
            is_purged=execution.is_purged,
            last_seen_at=now,
            reported_statuses=frozenset({execution.status}),
            origin_type=execution.origin_type,
            is_agentic=execution.is_agentic,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A change observed between the stored state and a fresh observation.

    `kind="status"`: `from_status` -> `to_status` (`from_status` is "unknown" for an
    execution first seen). `kind="credits"`: a running execution's credits grew from
    `credits_before` to `credits_after` (status unchanged).
    `alertable` is False for what the first start records as a baseline.
    """

    source: str
    execution_id: str
    kind: TransitionKind
    from_status: str
    to_status: str
    credits_before: float
    credits_after: float
    observed_at: datetime
    alertable: bool
    execution: Execution

    @property
    def key(self) -> str:
        """Stable identity: the same change observed twice has the same key."""
        if self.kind == "status":
            return f"{self.source}:{self.execution_id}:status:{self.to_status}"
        return f"{self.source}:{self.execution_id}:credits:{self.credits_after:g}"


@dataclass(frozen=True, slots=True)
class StateMarkers:
    """The stored fields that say whether an execution changed (see `detect.is_unchanged`);
    far cheaper to load than a whole `TrackedExecution` for a page of known history."""

    status: str
    credits_used: float
    updated_at: datetime
    is_purged: bool


@dataclass(frozen=True, slots=True)
class SourceCursor:
    """Per-source bookkeeping kept between cycles."""

    source: str
    first_poll_done: bool
    last_success_at: datetime | None
