"""Invariants of detection and paging against a model of the upstream list (hypothesis).

A pure in-memory model of the executions list (newest `createdAt` first, status
changes, credits, purges, deletions, new executions arriving at the top, also between
the page reads of one cycle so pages shift) is polled by a pure driver that does what
the engine does: `ScanPlan` + `observe` + `pick_refreshes` + `vanished` against a dict
store. Whatever the changes and whenever the polls happen (they may miss intermediate
states):
- each execution yields at most one transition into each status;
- no transition goes into a status the execution never had upstream;
- after quiescent cycles, every execution the relay can see converges to the API's
  state, each final status was transitioned into exactly once, nothing stays tracked
  as running forever, and without max_pages cut-offs or deletions nothing is missed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay.domain.detect import (
    FirstSeenPolicy,
    is_live,
    is_unchanged,
    observe,
    vanished,
)
from relay.domain.models import Execution
from relay.domain.paging import ScanPlan, StopReason, pick_refreshes
from relay.domain.state import TrackedExecution, Transition
from relay.vocab import TERMINAL_STATUSES

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = "prod"
STATUSES = ("running", "completed", "failed", "cancelled")

# --- the upstream model -------------------------------------------------------------


@dataclass(frozen=True)
class Create:
    status: str


@dataclass(frozen=True)
class SetStatus:
    target: int
    status: str


@dataclass(frozen=True)
class AddCredits:
    target: int
    amount: int


@dataclass(frozen=True)
class Purge:
    target: int


@dataclass(frozen=True)
class Delete:
    target: int


Mutation = Create | SetStatus | AddCredits | Purge | Delete


@dataclass(frozen=True)
class Poll:
    # mid[k] is applied just before page k + 2 of this cycle is read.
    mid: tuple[tuple[Mutation, ...], ...]


@dataclass
class Record:
    id: str
    status: str
    credits: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    purged: bool = False


@dataclass
class Upstream:
    """The API's view of a workspace; every mutation advances its clock by one second."""

    clock: datetime = T0
    records: dict[str, Record] = field(default_factory=dict)  # in creation order
    history: dict[str, list[str]] = field(default_factory=dict)
    flipped: set[str] = field(default_factory=set)  # left a terminal status once
    deleted: set[str] = field(default_factory=set)
    _cache: dict[tuple[Any, ...], Execution] = field(default_factory=dict)

    def tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def apply(self, mutation: Mutation) -> None:
        now = self.tick()
        if isinstance(mutation, Create):
            execution_id = f"e{len(self.history):03d}"
            ended = now if mutation.status in TERMINAL_STATUSES else None
            self.records[execution_id] = Record(execution_id, mutation.status, 0, now, now, ended)
            self.history[execution_id] = [mutation.status]
            return
        if not self.records:
            return
        record = list(self.records.values())[mutation.target % len(self.records)]
        if isinstance(mutation, SetStatus) and mutation.status != record.status:
            if record.status in TERMINAL_STATUSES:
                self.flipped.add(record.id)
            record.status = mutation.status
            record.ended_at = now if mutation.status in TERMINAL_STATUSES else None
            self.history[record.id].append(mutation.status)
        elif isinstance(mutation, AddCredits) and record.status == "running":
            record.credits += mutation.amount
        elif isinstance(mutation, Purge) and record.status in TERMINAL_STATUSES:
            record.purged = True
        elif isinstance(mutation, Delete):
            del self.records[record.id]
            self.deleted.add(record.id)
            return
        else:
            return
        record.updated_at = now

    def page(self, number: int, *, size: int) -> list[Execution]:
        newest_first = list(reversed(self.records.values()))
        return [self._execution(r) for r in newest_first[(number - 1) * size : number * size]]

    def get(self, execution_id: str) -> Execution | None:
        record = self.records.get(execution_id)
        return None if record is None else self._execution(record)

    def _execution(self, r: Record) -> Execution:
        key = (r.id, r.status, r.credits, r.updated_at, r.ended_at, r.purged)
        if key not in self._cache:
            self._cache[key] = Execution.model_validate(
                {
                    "id": r.id,
                    "workspaceId": "ws-1",
                    "responderId": "responder-1",
                    "parentId": None,
                    "status": r.status,
                    "isAgentic": False,
                    "isPurged": r.purged,
                    "creditsUsed": r.credits,
                    "createdAt": r.created_at.isoformat(),
                    "updatedAt": r.updated_at.isoformat(),
                    "startedAt": r.created_at.isoformat(),
                    "endedAt": None if r.ended_at is None else r.ended_at.isoformat(),
                    "detail": {
                        "type": "agent-execution",
                        "agentId": "agent-1",
                        "events": [],
                        "origin": {"type": "api", "apiKeyId": "key-1"},
                        "input": {},
                        "output": None,
                    },
                }
            )
        return self._cache[key]


# --- the driver: what the engine does, without I/O ------------------------------------


@dataclass
class Relay:
    page_size: int
    max_pages: int
    refresh_limit: int
    store: dict[str, TrackedExecution] = field(default_factory=dict)
    log: list[tuple[int, Transition]] = field(default_factory=list)  # (cycle, transition)
    stops: list[StopReason] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)  # list requests per cycle
    cycles: int = 0

    def cycle(self, upstream: Upstream, mid: Sequence[Sequence[Mutation]] = ()) -> None:
        now = upstream.tick()
        first_poll = self.cycles == 0
        self.cycles += 1
        policy = FirstSeenPolicy.for_cycle(
            first_poll=first_poll, on_first_start="baseline", backfill_window=timedelta(0)
        )
        plan = ScanPlan.start(
            tracked_running={s.id for s in self.store.values() if is_live(s)},
            max_pages=self.max_pages,
            first_poll=first_poll,
        )
        while plan.should_read_next:
            if 1 <= plan.pages_read <= len(mid):
                for mutation in mid[plan.pages_read - 1]:
                    upstream.apply(mutation)
            items = upstream.page(plan.next_page, size=self.page_size)
            by_id = {e.id: e for e in items}
            unchanged = {e.id for e in items if is_unchanged(self.store.get(e.id), e)}
            for execution_id in plan.unseen(by_id):
                self._observe(by_id[execution_id], now=now, policy=policy)
            plan = plan.after_page(
                ids=list(by_id),
                raw_count=len(items),
                page_size=self.page_size,
                unchanged_ids=unchanged,
            )
        assert plan.stop_reason is not None
        self.stops.append(plan.stop_reason)
        self.pages.append(plan.pages_read)
        uncovered = plan.uncovered_running
        candidates = [self.store[i] for i in uncovered]
        for execution_id in pick_refreshes(
            candidates, uncovered=uncovered, limit=self.refresh_limit
        ):
            fresh = upstream.get(execution_id)
            if fresh is None:
                self.store[execution_id] = vanished(self.store[execution_id], now=now)
            else:
                self._observe(fresh, now=now, policy=policy)

    def _observe(self, execution: Execution, *, now: datetime, policy: FirstSeenPolicy) -> None:
        result = observe(
            self.store.get(execution.id), execution, source=SOURCE, now=now, policy=policy
        )
        self.store[execution.id] = result.state
        self.log.extend((self.cycles, t) for t in result.transitions)


# --- strategies ---------------------------------------------------------------------

targets = st.integers(min_value=0, max_value=40)
creates = st.builds(Create, status=st.sampled_from(("running", "running", *STATUSES)))
set_statuses = st.builds(SetStatus, target=targets, status=st.sampled_from(STATUSES))
add_credits = st.builds(AddCredits, target=targets, amount=st.integers(min_value=1, max_value=5))
# Deletions are rare upstream, and each one may hide an item behind a shifted page.
mutations: st.SearchStrategy[Mutation] = st.one_of(
    *(creates,) * 3,
    *(set_statuses,) * 3,
    *(add_credits,) * 2,
    st.builds(Purge, target=targets),
    st.builds(Delete, target=targets),
)
polls = st.builds(
    Poll,
    mid=st.lists(st.lists(mutations, max_size=3).map(tuple), max_size=3).map(tuple),
)
# History that exists before the relay first starts, then rounds of changes, each
# followed by a poll.
rounds = st.lists(st.tuples(st.lists(mutations, max_size=5), polls), max_size=10)
scenarios = st.tuples(st.lists(creates, max_size=16), rounds).map(
    lambda parts: [*parts[0], *(step for changes, poll in parts[1] for step in (*changes, poll))]
)


def simulate(
    steps: Sequence[Mutation | Poll], *, page_size: int, max_pages: int, refresh_limit: int
) -> tuple[Upstream, Relay]:
    """Run the scenario, then enough quiescent cycles for round-robin refreshes to reach
    every live execution."""
    upstream = Upstream()
    relay = Relay(page_size=page_size, max_pages=max_pages, refresh_limit=refresh_limit)
    for step in steps:
        if isinstance(step, Poll):
            relay.cycle(upstream, step.mid)
        else:
            upstream.apply(step)
    for _ in range(math.ceil(len(upstream.history) / refresh_limit) + 2):
        relay.cycle(upstream)
    return upstream, relay


def check_invariants(upstream: Upstream, relay: Relay) -> None:
    transitions = [t for _, t in relay.log]
    status_changes = [t for t in transitions if t.kind == "status"]

    # At most one transition into each status, and only into statuses really reached.
    into = Counter((t.execution_id, t.to_status) for t in status_changes)
    assert max(into.values(), default=0) <= 1
    for t in status_changes:
        assert t.to_status in upstream.history[t.execution_id]
    for t in transitions:
        if t.kind == "credits":
            assert t.to_status == "running"
            assert t.credits_after > t.credits_before
    # The first poll records a baseline; everything after it may alert.
    assert all(t.alertable is (cycle > 1) for cycle, t in relay.log)

    # A quiescent cycle finds nothing new, and costs one page plus at most one page per
    # live execution it has to look for.
    before = len(relay.log)
    live = sum(is_live(state) for state in relay.store.values())
    relay.cycle(upstream)
    assert len(relay.log) == before
    assert relay.pages[-1] <= 1 + 2 * live

    # Nothing stays tracked as running once it ended, was purged or vanished.
    for state in relay.store.values():
        if is_live(state):
            record = upstream.records[state.id]
            assert (record.status, record.purged) == ("running", False)
    for execution_id in upstream.deleted & relay.store.keys():
        assert not is_live(relay.store[execution_id])

    # Convergence of every execution the relay can see, except one that left a terminal
    # status upstream: an execution that ends, then runs again deep in history, is only
    # seen again if a page happens to show it. Its final status was transitioned into
    # exactly once, so nothing that changed between polls was missed.
    for execution_id, record in upstream.records.items():
        known = relay.store.get(execution_id)
        if known is None or execution_id in upstream.flipped:
            continue
        assert (known.status, known.credits_used) == (record.status, record.credits)
        if not record.purged:
            assert known.updated_at == record.updated_at
        assert into[(execution_id, record.status)] == 1


def without_deletions(steps: list[Mutation | Poll]) -> list[Mutation | Poll]:
    kept: list[Mutation | Poll] = []
    for step in steps:
        if isinstance(step, Poll):
            mid = tuple(tuple(m for m in ms if not isinstance(m, Delete)) for ms in step.mid)
            kept.append(Poll(mid))
        elif not isinstance(step, Delete):
            kept.append(step)
    return kept


page_sizes = st.integers(min_value=1, max_value=4)
refresh_limits = st.integers(min_value=1, max_value=3)


@settings(max_examples=200, deadline=None)
@given(
    steps=scenarios,
    page_size=page_sizes,
    max_pages=st.integers(min_value=1, max_value=5),
    refresh_limit=refresh_limits,
)
def test_polling_model(
    steps: list[Mutation | Poll], page_size: int, max_pages: int, refresh_limit: int
) -> None:
    upstream, relay = simulate(
        steps, page_size=page_size, max_pages=max_pages, refresh_limit=refresh_limit
    )
    check_invariants(upstream, relay)


@settings(max_examples=150, deadline=None)
# New executions arrive at the top between two page reads: page 2 repeats page 1's item,
# which proves nothing about older history; e000 must still be read.
@example(
    steps=[
        Poll(mid=()),
        Create("completed"),
        Create("completed"),
        Poll(mid=((Create("completed"),),)),
    ],
    page_size=1,
    refresh_limit=1,
)
@given(
    steps=scenarios.map(without_deletions),
    page_size=page_sizes,
    refresh_limit=refresh_limits,
)
def test_nothing_missed_without_cutoffs(
    steps: list[Mutation | Poll], page_size: int, refresh_limit: int
) -> None:
    # With max_pages never reached and no deletion shifting a page boundary up, every
    # execution of the workspace ends up stored, whatever arrives during a scan.
    upstream, relay = simulate(
        steps, page_size=page_size, max_pages=1000, refresh_limit=refresh_limit
    )
    check_invariants(upstream, relay)
    assert "max_pages" not in relay.stops
    assert upstream.records.keys() <= relay.store.keys()


# --- one execution, observations in any order -----------------------------------------


@st.composite
def versions(draw: st.DrawFn) -> list[Execution]:
    """Successive upstream versions of one execution, `updatedAt` strictly increasing."""
    statuses = draw(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=8))
    upstream = Upstream()
    upstream.apply(Create(statuses[0]))
    found = [upstream.page(1, size=1)[0]]
    for status in statuses[1:]:
        upstream.apply(AddCredits(0, draw(st.integers(min_value=1, max_value=3))))
        upstream.apply(SetStatus(0, status))
        found.append(upstream.page(1, size=1)[0])
    return found


@settings(max_examples=200, deadline=None)
@given(data=st.data(), history=versions())
def test_observations_in_any_order(data: st.DataObject, history: list[Execution]) -> None:
    # Polls may miss versions, see them twice, or see an older one after a newer one.
    seen = data.draw(st.lists(st.sampled_from(history), min_size=1, max_size=12))
    state: TrackedExecution | None = None
    produced: list[Transition] = []
    for minute, execution in enumerate(seen):
        result = observe(
            state,
            execution,
            source=SOURCE,
            now=T0 + timedelta(minutes=minute),
            policy=FirstSeenPolicy(alertable=True),
        )
        if state is not None:
            assert result.state.updated_at >= state.updated_at  # never regresses
        state = result.state
        produced.extend(result.transitions)

    assert state is not None
    newest = max(seen, key=lambda e: e.updated_at)
    assert (state.status, state.credits_used, state.updated_at) == (
        newest.status,
        newest.credits_used,
        newest.updated_at,
    )
    into = Counter(t.to_status for t in produced if t.kind == "status")
    assert max(into.values()) <= 1
    assert set(into) <= {e.status for e in seen}
    assert newest.status in state.reported_statuses
