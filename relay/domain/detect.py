"""Stored state + one fresh observation of an execution -> its new state and transitions.

Pure: no I/O, no clock; the caller passes `now`. The engine calls `observe` for every
execution a cycle reads (from a page or by id) and `vanished` for a tracked execution
the API now answers 404 for, then persists states and transitions in one transaction.

Invariants:
- An execution first seen yields exactly one status transition, from "unknown" to its
  observed status (running included: rules about stuck executions need it). Whether it
  is alertable is the `FirstSeenPolicy`'s call; transitions of an execution already
  known are always alertable.
- At most one status transition into each status per execution, ever:
  `TrackedExecution.reported_statuses` remembers every status a transition went into
  (baseline ones included), so an execution that flips failed -> running -> failed
  upstream still yields one transition into "failed".
- A transition into a terminal status carries the final credits (`credits_after`).
- A running execution whose credits grew (status unchanged) yields a "credits"
  transition; a change of status never yields a credits transition as well.
- A stale observation (`updated_at` older than the stored one, e.g. a page read while
  the execution changed) never regresses the state and never yields a transition; only
  `last_seen_at` moves, so round-robin refreshes still rotate past it.
- A purge alone never yields a transition. A purged execution is no longer *live*
  (`is_live` is False) even if its stored status stays "running": the pager does not
  chase it and refreshes never pick it, so it is not re-read forever. Its status and
  credits are still updated whenever a page happens to show it.
- A vanished execution (404) is stored with status "vanished" and yields no transition.
- `last_seen_at` is "when a cycle last looked at it": every observation sets it to `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from relay.domain.models import Execution
from relay.domain.state import UNKNOWN_STATUS, TrackedExecution, Transition, TransitionKind

VANISHED_STATUS = "vanished"

__all__ = [
    "VANISHED_STATUS",
    "FirstSeenPolicy",
    "Observation",
    "is_live",
    "is_unchanged",
    "live_after",
    "observe",
    "vanished",
]


@dataclass(frozen=True, slots=True)
class FirstSeenPolicy:
    """Whether the transition of an execution seen for the first time may alert.

    `alertable=True` in steady state. During a source's first poll it is False: with
    `on_first_start: baseline` everything that already exists is recorded silently; with
    `backfill`, `backfill_window` is set and first-seen executions that *ended* within
    it of `now` are alertable while older ones (and running ones, which have not ended)
    are recorded silently.
    """

    alertable: bool
    backfill_window: timedelta | None = None
    # Adaptive reads below the top after a first start: an execution first seen there
    # that ended at or after this moment changed while the relay watched (it was still
    # running when the relay started), so its end is alerted.
    ended_since: datetime | None = None

    @classmethod
    def for_cycle(
        cls,
        *,
        first_poll: bool,
        on_first_start: Literal["baseline", "backfill"],
        backfill_window: timedelta,
    ) -> FirstSeenPolicy:
        """The policy of one cycle of a source, from its settings."""
        if not first_poll:
            return cls(alertable=True)
        if on_first_start == "backfill":
            return cls(alertable=False, backfill_window=backfill_window)
        return cls(alertable=False)

    def allows(self, execution: Execution, *, now: datetime) -> bool:
        if self.alertable:
            return True
        if not execution.is_terminal:
            return False
        # A terminal execution without `endedAt` would be an API quirk; its last update
        # is the best estimate of when it ended.
        ended_at = execution.ended_at or execution.updated_at
        if self.ended_since is not None and ended_at >= self.ended_since:
            return True
        return self.backfill_window is not None and now - ended_at <= self.backfill_window


@dataclass(frozen=True, slots=True)
class Observation:
    """The outcome of observing one execution: its new state and what changed.

    `stale` is True when the observation was older than the stored state and ignored.
    """

    state: TrackedExecution
    transitions: tuple[Transition, ...] = ()
    stale: bool = False


def is_live(state: TrackedExecution) -> bool:
    """Whether the pager must keep covering this execution: running and not purged."""
    return state.is_running and not state.is_purged


class ChangeMarkers(Protocol):
    """The fields that say whether an execution changed: an `Execution`, or the cheaply
    checked head of a page item (`source.pages.PageEntry`)."""

    @property
    def status(self) -> str: ...
    @property
    def credits_used(self) -> float: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def is_purged(self) -> bool: ...


def live_after(
    before: Mapping[str, TrackedExecution], changed: Mapping[str, TrackedExecution]
) -> dict[str, TrackedExecution]:
    """The live executions by id once a cycle's changed states are applied to `before`,
    the live executions by id it began from (a copy, then only the changes: this runs
    on every read, and a read changes a handful of a thousand)."""
    live = dict(before)
    for execution_id, state in changed.items():
        if is_live(state):
            live[execution_id] = state
        else:
            live.pop(execution_id, None)
    return live


def is_unchanged(previous: ChangeMarkers | None, execution: ChangeMarkers) -> bool:
    """Known, and the API shows the same status, credits, purge flag and `updated_at`.

    This is the pager's "known, unchanged history" test.
    """
    return (
        previous is not None
        and previous.status == execution.status
        and previous.credits_used == execution.credits_used
        and previous.updated_at == execution.updated_at
        and previous.is_purged == execution.is_purged
    )


def observe(
    previous: TrackedExecution | None,
    execution: Execution,
    *,
    source: str,
    now: datetime,
    policy: FirstSeenPolicy,
) -> Observation:
    """Compare one fresh observation with the stored state (None if never seen)."""
    if previous is None:
        state = TrackedExecution.from_execution(execution, source=source, now=now)
        first = _transition(
            execution,
            source=source,
            now=now,
            from_status=UNKNOWN_STATUS,
            credits_before=0.0,
            alertable=policy.allows(execution, now=now),
        )
        return Observation(state=state, transitions=(first,))

    if previous.id != execution.id:
        raise ValueError(f"state of {previous.id!r} compared with execution {execution.id!r}")
    if execution.updated_at < previous.updated_at:
        return Observation(state=replace(previous, last_seen_at=now), stale=True)

    fresh = TrackedExecution.from_execution(execution, source=source, now=now)
    reported = previous.reported_statuses
    kind: TransitionKind | None = None
    if execution.status != previous.status:
        if execution.status not in reported:
            reported = reported | {execution.status}
            kind = "status"
    elif execution.status == "running" and execution.credits_used > previous.credits_used:
        kind = "credits"
    transitions: tuple[Transition, ...] = ()
    if kind is not None:
        change = _transition(
            execution,
            source=source,
            now=now,
            from_status=previous.status,
            credits_before=previous.credits_used,
            alertable=True,
            kind=kind,
        )
        transitions = (change,)
    return Observation(state=replace(fresh, reported_statuses=reported), transitions=transitions)


def vanished(previous: TrackedExecution, *, now: datetime) -> TrackedExecution:
    """The state of a tracked execution the API no longer knows (404): no transition."""
    return replace(previous, status=VANISHED_STATUS, last_seen_at=now)


def _transition(
    execution: Execution,
    *,
    source: str,
    now: datetime,
    from_status: str,
    credits_before: float,
    alertable: bool,
    kind: TransitionKind = "status",
) -> Transition:
    return Transition(
        source=source,
        execution_id=execution.id,
        kind=kind,
        from_status=from_status,
        to_status=execution.status,
        credits_before=credits_before,
        credits_after=execution.credits_used,
        observed_at=now,
        alertable=alertable,
        execution=execution,
    )
