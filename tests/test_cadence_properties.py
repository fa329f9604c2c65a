"""Detection invariants under the adaptive cadence, against the upstream model of
`test_detect_properties` (hypothesis).

A pure driver does what `pipeline.adaptive` and the engine do for `polling: adaptive`:
the planner (`cadence.plan_next`) picks one read at a time (the top until known history,
a page of tracked running executions, one by id, a sweep page), `ListPositions` follows
where tracked executions are as new ones arrive at the top, and every read is observed
with `observe`. Whatever the changes and whenever the reads happen:
- each execution yields at most one transition into each status, and only into
  statuses it really had upstream;
- the first top read records a baseline; reads below the top record what they first
  see as a first start would, except what ended after the start;
- after quiescent reads, every tracked running execution is still running upstream
  (none is lost however deep it slid), and every execution the relay knows converges
  to the API's state, its final status transitioned into exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.cadence import CadenceInputs, Read, RunningView, plan_next
from relay.domain.detect import FirstSeenPolicy, is_live, is_unchanged, observe, vanished
from relay.domain.lifetimes import Lifetimes
from relay.domain.models import Execution
from relay.domain.positions import ListPositions
from relay.domain.state import TrackedExecution, Transition
from tests.test_detect_properties import (
    SOURCE,
    T0,
    Create,
    Mutation,
    Poll,
    SetStatus,
    Upstream,
    scenarios,
)

BASELINE = FirstSeenPolicy(alertable=False)
STEADY = FirstSeenPolicy(alertable=True)


@dataclass
class AdaptiveRelay:
    page_size: int
    reads_per_poll: int
    store: dict[str, TrackedExecution] = field(default_factory=dict)
    log: list[Transition] = field(default_factory=list)
    positions: ListPositions = field(init=False)
    last_read_s: dict[str, float] = field(default_factory=dict)
    last_top_s: float | None = None
    watch_since: datetime | None = None
    sweep_page: int | None = None
    last_sweep_s: float = float("-inf")

    def __post_init__(self) -> None:
        self.positions = ListPositions(page_size=self.page_size)

    def poll(self, upstream: Upstream, *, reads: int | None = None) -> None:
        for _ in range(self.reads_per_poll if reads is None else reads):
            self.read(upstream)

    def read(self, upstream: Upstream) -> None:
        now = upstream.tick()
        now_s = (now - T0).total_seconds()
        if self.last_top_s is None:
            self._top(upstream, now=now, now_s=now_s)
            return
        live = [s for s in self.store.values() if is_live(s)]
        pages = self.positions.pages((s.id for s in live), now_s=now_s)
        plan = plan_next(_inputs(self, now_s=now_s, live=live, pages=pages, now=now))
        read = plan.read or Read("top")
        if read.kind == "top":
            self._top(upstream, now=now, now_s=now_s)
        elif read.kind in ("page", "sweep"):
            self._page(upstream, read.page, now=now, now_s=now_s)
            if read.kind == "sweep":
                self.last_sweep_s = now_s
        elif read.execution_id is not None:
            self._by_id(upstream, read.execution_id, now=now, now_s=now_s)

    def _top(self, upstream: Upstream, *, now: datetime, now_s: float) -> None:
        first = self.last_top_s is None
        policy = BASELINE if first else STEADY
        if first:
            self.watch_since = now
        self.last_top_s = now_s
        page = 1
        while True:
            items = upstream.page(page, size=self.page_size)
            known = any(is_unchanged(self.store.get(e.id), e) for e in items)
            self._observe_page(page, items, policy=policy, now=now, now_s=now_s)
            if first:
                if len(items) == self.page_size:
                    self.sweep_page = 2
                return
            if known or len(items) < self.page_size:
                return
            page += 1

    def _page(self, upstream: Upstream, number: int, *, now: datetime, now_s: float) -> None:
        items = upstream.page(number, size=self.page_size)
        below = replace(BASELINE, ended_since=self.watch_since)
        self._observe_page(number, items, policy=below, now=now, now_s=now_s)
        if self.sweep_page == number:
            self.sweep_page = None if len(items) < self.page_size else number + 1

    def _by_id(self, upstream: Upstream, execution_id: str, *, now: datetime, now_s: float) -> None:
        fresh = upstream.get(execution_id)
        self.last_read_s[execution_id] = now_s
        if fresh is None:
            self.store[execution_id] = vanished(self.store[execution_id], now=now)
        else:
            self._observe(fresh, policy=STEADY, now=now)

    def _observe_page(
        self,
        number: int,
        items: Sequence[Execution],
        *,
        policy: FirstSeenPolicy,
        now: datetime,
        now_s: float,
    ) -> None:
        for execution in items:
            self._observe(execution, policy=policy, now=now)
            self.last_read_s[execution.id] = now_s
        ids = [e.id for e in items]
        keep = {s.id for s in self.store.values() if is_live(s)} | (
            set(ids) if number == 1 else set()
        )
        self.positions = self.positions.after_page(number, ids, now_s=now_s, keep=keep)

    def _observe(self, execution: Execution, *, policy: FirstSeenPolicy, now: datetime) -> None:
        result = observe(
            self.store.get(execution.id), execution, source=SOURCE, now=now, policy=policy
        )
        self.store[execution.id] = result.state
        self.log.extend(result.transitions)


def _inputs(
    relay: AdaptiveRelay,
    *,
    now_s: float,
    live: list[TrackedExecution],
    pages: dict[str, int],
    now: datetime,
) -> CadenceInputs:
    assert relay.last_top_s is not None
    return CadenceInputs(
        now_s=now_s,
        running=[
            RunningView(
                id=s.id,
                responder_id=s.responder_id,
                age_s=(now - s.started_at).total_seconds(),
                last_read_s=relay.last_read_s.get(s.id, 0.0),
                page=pages.get(s.id),
            )
            for s in live
        ],
        last_top_read_s=relay.last_top_s,
        arrival_rate_per_s=relay.positions.arrival_rate_per_s,
        allowed_rate_per_s=1.0,
        poll_interval_s=10.0,
        lifetimes=Lifetimes(),
        sweep_page=relay.sweep_page,
        last_sweep_s=relay.last_sweep_s,
    )


def simulate(
    steps: Sequence[Mutation | Poll], *, page_size: int, reads_per_poll: int
) -> tuple[Upstream, AdaptiveRelay]:
    upstream = Upstream()
    relay = AdaptiveRelay(page_size=page_size, reads_per_poll=reads_per_poll)
    for step in steps:
        if isinstance(step, Poll):
            relay.poll(upstream)
        else:
            upstream.apply(step)
    # Quiescent reads: enough for the sweep and every tracked place within the bound.
    relay.poll(upstream, reads=4 * (len(upstream.records) + 10))
    return upstream, relay


@settings(max_examples=100, deadline=None)
@given(
    steps=scenarios,
    page_size=st.integers(min_value=1, max_value=4),
    reads_per_poll=st.integers(min_value=1, max_value=4),
)
def test_adaptive_reads_keep_the_detection_invariants(
    steps: list[Mutation | Poll], page_size: int, reads_per_poll: int
) -> None:
    upstream, relay = simulate(steps, page_size=page_size, reads_per_poll=reads_per_poll)
    status_changes = [t for t in relay.log if t.kind == "status"]
    into = Counter((t.execution_id, t.to_status) for t in status_changes)
    assert max(into.values(), default=0) <= 1
    for t in status_changes:
        assert t.to_status in upstream.history[t.execution_id]
    # None lost: whatever is still tracked as running is running upstream.
    for state in relay.store.values():
        if is_live(state) and state.id in upstream.records:
            record = upstream.records[state.id]
            assert (record.status, record.purged) == ("running", False)
    # Convergence of what the relay knows (an execution that left a terminal status is
    # only seen again if a page happens to show it, as with fixed cycles).
    for execution_id, record in upstream.records.items():
        known = relay.store.get(execution_id)
        if known is None or execution_id in upstream.flipped:
            continue
        assert (known.status, known.credits_used) == (record.status, record.credits)
        assert into[(execution_id, record.status)] == 1
    # The top is always known: nothing that arrives is missed.
    for execution in upstream.page(1, size=page_size):
        assert execution.id in relay.store


def test_deep_running_executions_are_followed_to_their_end() -> None:
    # Ten running executions below twenty newer ones, pages of two: a first start finds
    # them with the sweep, then follows each to its end while new ones push them down.
    upstream = Upstream()
    for _ in range(10):
        upstream.apply(Create("running"))
    for _ in range(20):
        upstream.apply(Create("completed"))
    relay = AdaptiveRelay(page_size=2, reads_per_poll=3)
    relay.poll(upstream, reads=40)
    tracked = {s.id for s in relay.store.values() if is_live(s)}
    assert len(tracked) == 10
    for target in range(10):
        upstream.apply(Create("completed"))  # arrivals keep shifting the pages
        upstream.apply(SetStatus(target, "failed"))
        relay.poll(upstream)
    relay.poll(upstream, reads=60)
    failed = {t.execution_id for t in relay.log if t.to_status == "failed" and t.alertable}
    assert failed == tracked
    assert Counter(t.execution_id for t in relay.log if t.to_status == "failed") == Counter(
        dict.fromkeys(tracked, 1)
    )
