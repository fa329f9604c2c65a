"""The state store contract: what the engine persists between cycles, whatever the backend.

Invariants every implementation keeps:
- All methods are coroutines and own their transactions; a caller never sees a
  half-applied cycle. `commit_cycle` is ONE transaction: states, transitions and the
  source cursor are stored together or not at all.
- A transition is stored at most once per `Transition.key` (a unique constraint), so a
  replayed cycle, a restart or a second replica can never store it twice.
- Datetimes go in and come out timezone-aware UTC, exact to the microsecond.
- Execution inputs are never persisted: they can hold personal data and secrets. A
  transition keeps a snapshot of its execution without `detail.input` and without each
  event's `input`; outputs stay because they carry the error messages alerts quote.
- Running states are never pruned, whatever their age.

Nothing here is specific to one database: no SQL, no rowids, no file paths.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from relay.domain.models import Execution
from relay.domain.state import SourceCursor, TrackedExecution, Transition, TransitionKind

__all__ = [
    "CycleResult",
    "PruneResult",
    "Store",
    "StoredTransition",
    "execution_snapshot",
]


@dataclass(frozen=True)
class CycleResult:
    """Everything one poll cycle of one source persists, in one transaction."""

    source: str
    states: Sequence[TrackedExecution]
    transitions: Sequence[Transition]
    cursor: SourceCursor

    def __post_init__(self) -> None:
        # A cycle belongs to exactly one source; a stray record would be stored under
        # the wrong workspace and silently never match again.
        sources = {s.source for s in self.states} | {t.source for t in self.transitions}
        strays = sorted((sources | {self.cursor.source}) - {self.source})
        if strays:
            raise ValueError(f"cycle of source {self.source!r} carries records of {strays}")


@dataclass(frozen=True)
class StoredTransition:
    """A transition as read back from the store.

    `snapshot` is the execution as observed, in API JSON (camelCase), without inputs.
    """

    key: str
    source: str
    execution_id: str
    kind: TransitionKind
    from_status: str
    to_status: str
    credits_before: float
    credits_after: float
    observed_at: datetime
    alertable: bool
    snapshot: dict[str, Any] = field(repr=False)

    def execution(self) -> Execution:
        """The snapshot parsed back; `detail.input` reads as `{}` because it is not kept."""
        raw = copy.deepcopy(self.snapshot)
        detail = raw.get("detail")
        if isinstance(detail, dict):
            detail.setdefault("input", {})
        return Execution.model_validate(raw)


@dataclass(frozen=True)
class PruneResult:
    """How many rows one `Store.prune` call deleted."""

    states_deleted: int
    transitions_deleted: int


def execution_snapshot(execution: Execution) -> dict[str, Any]:
    """The execution as API JSON, minus every input (see the module invariants)."""
    snapshot = execution.model_dump(mode="json", by_alias=True)
    detail = snapshot.get("detail")
    if isinstance(detail, dict):
        detail.pop("input", None)
        for event in detail.get("events") or ():
            if isinstance(event, dict):
                event.pop("input", None)
    return snapshot


class Store(Protocol):
    """Durable state of the relay. Implementations: `SqliteStore` (one replica).

    Usage: `await store.open()` once (creates or migrates the schema), then any method,
    then `await store.close()`; or `async with store:`. Every failure of the backend
    raises `relay.errors.StoreError` with a message that says what to do.
    """

    async def open(self) -> None:
        """Connect, then create or migrate the schema. Idempotent."""
        ...

    async def close(self) -> None:
        """Release the connection. Idempotent; the store can be opened again."""
        ...

    async def ping(self) -> None:
        """Raise `StoreError` unless the store is open and answers."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get_cursor(self, source: str) -> SourceCursor | None:
        """The cursor of `source`, or None before its first committed cycle."""
        ...

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        """The stored states among `ids`, by id; unknown ids are absent from the result."""
        ...

    async def running_states(self, source: str) -> list[TrackedExecution]:
        """States with status "running", least recently seen first, then by id."""
        ...

    async def commit_cycle(self, result: CycleResult) -> None:
        """Upsert states, insert new transitions (known keys are ignored), upsert the cursor."""
        ...

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[StoredTransition]:
        """Up to `limit` transitions, newest `observed_at` first."""
        ...

    async def transition_count(self, *, source: str | None = None) -> int: ...

    async def state_count(self, *, source: str | None = None) -> int: ...

    async def prune(self, *, before: datetime) -> PruneResult:
        """Delete non-running states that ended (or were last seen) before `before`, and
        transitions observed before `before`."""
        ...
