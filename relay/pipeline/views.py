"""The cadence's views of the tracked running executions, kept from read to read.

A plan looks at every tracked execution on every read, but a read changes few of them:
the ones it read (their last read), the ones it re-anchored, the ones whose page the
arrivals since moved them off, the ones whose age left its end-rate bucket. A view is
computed again only for those; the others are the views of the last plan.

Invariants:
- A view handed out is the one a plan computed afresh now would get, except its
  `age_s`: that is the age it was computed at, in the same end-rate bucket, so its end
  rate (carried in the view) is the same (`EndRates.held`).
- A view is kept only while its anchor (the same `Anchor` object), its page (the
  arrivals stay in the range `ListPositions.held_page` gave) and its end-rate bucket
  (the time stays before the bucket's end) hold, and until `touch` says it was read
  or re-anchored. When the plan's `EndRates` is another object (the estimates were
  refreshed), every view takes its bucket's new rate; nothing else is computed
  again. Views whose last read comes from the store (not read by this process yet)
  are never kept.
- Memory is bounded by the tracked set: views of executions no longer tracked go at
  the next plan, and the queues of pending checks are rebuilt when they outgrow it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from relay.domain.cadence import EndRates, RunningView
from relay.domain.positions import Anchor, ListPositions
from relay.domain.state import TrackedExecution

# (started_s, last_read_s, last_read_kept): when it started and was last read, on the
# cadence's clock; False when the last read is the store's (it moves with `now_s`).
Times = Callable[[TrackedExecution, float], tuple[float, float, bool]]
# How much larger than the tracked set the check queues may grow before a rebuild.
_QUEUE_SLACK = 4


class _Held(NamedTuple):
    view: RunningView
    anchor: Anchor | None
    arrivals_from: float
    arrivals_to: float
    rate_until_s: float


class HeldViews:
    """Views of the tracked executions, recomputed only where something changed."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}
        # The views alone, in the same order: a plan's list of them is a copy at C speed.
        self._views: dict[str, RunningView] = {}
        self._rates: EndRates | None = None
        self._stale: set[str] = set()
        self._volatile: set[str] = set()
        # Checks due: arrivals at or above which a page ends, arrivals below which it
        # ends (negated, a max-heap), times at which an end-rate bucket ends.
        self._page_up: list[tuple[float, str]] = []
        self._page_down: list[tuple[float, str]] = []
        self._rate_due: list[tuple[float, str]] = []

    def clear(self) -> None:
        self._held.clear()
        self._views.clear()
        self._rates = None
        self._stale.clear()
        self._volatile.clear()
        self._page_up.clear()
        self._page_down.clear()
        self._rate_due.clear()

    def touch(self, ids: Iterable[str]) -> None:
        """These were read, or re-anchored: compute their views again (those not held
        yet are computed anyway)."""
        self._stale.update(self._held.keys() & ids)

    def views(
        self,
        running: Mapping[str, TrackedExecution],
        *,
        now_s: float,
        positions: ListPositions,
        end_rates: EndRates,
        times: Times,
    ) -> list[RunningView]:
        held = self._held
        if end_rates is not self._rates:
            self._rerate(end_rates)
        arrivals = positions.arrivals_at(now_s)
        stale = self._stale
        for gone in held.keys() - running.keys():
            del held[gone]
            del self._views[gone]
        stale.update(running.keys() - held.keys())
        was_volatile, self._volatile = self._volatile, set()
        stale.update(was_volatile)
        self._due(arrivals=arrivals, now_s=now_s)
        anchors = positions.anchors
        for execution_id in stale:
            state = running.get(execution_id)
            if state is not None:
                # A view that was not kept has no checks queued.
                before = None if execution_id in was_volatile else held.get(execution_id)
                self._compute(
                    state, anchors.get(execution_id), arrivals, now_s, positions, times, before
                )
        stale.clear()
        if len(self._page_up) + len(self._page_down) + len(self._rate_due) > _QUEUE_SLACK * (
            len(held) + 64
        ):
            self._rebuild_queues()
        return list(self._views.values())

    def _rerate(self, end_rates: EndRates) -> None:
        """New end-rate estimates: each kept view takes the new rate of its age bucket
        (the bucket, hence every queued check, stays the same); pages stand."""
        self._rates = end_rates
        held, views = self._held, self._views
        for execution_id, entry in held.items():
            view = entry.view
            rate = end_rates.held(view.responder_id, age_s=view.age_s)[0]
            if rate != view.end_rate_per_s:
                view = RunningView(
                    view.id, view.responder_id, view.age_s, view.last_read_s, view.page, rate
                )
                held[execution_id] = _Held(
                    view, entry.anchor, entry.arrivals_from, entry.arrivals_to, entry.rate_until_s
                )
                views[execution_id] = view

    def _due(self, *, arrivals: float, now_s: float) -> None:
        """Mark stale the views whose page or end rate ended; checks left from views
        computed since (another limit) are dropped."""
        stale, held = self._stale, self._held
        page_up, page_down, rate_due = self._page_up, self._page_down, self._rate_due
        while page_up and page_up[0][0] <= arrivals:
            limit, execution_id = heapq.heappop(page_up)
            if (kept := held.get(execution_id)) is not None and kept.arrivals_to == limit:
                stale.add(execution_id)
        while page_down and -page_down[0][0] > arrivals:
            limit, execution_id = heapq.heappop(page_down)
            if (kept := held.get(execution_id)) is not None and kept.arrivals_from == -limit:
                stale.add(execution_id)
        while rate_due and rate_due[0][0] <= now_s:
            limit, execution_id = heapq.heappop(rate_due)
            if (kept := held.get(execution_id)) is not None and kept.rate_until_s == limit:
                stale.add(execution_id)

    def _compute(
        self,
        state: TrackedExecution,
        anchor: Anchor | None,
        arrivals: float,
        now_s: float,
        positions: ListPositions,
        times: Times,
        before: _Held | None,
    ) -> None:
        assert self._rates is not None
        execution_id = state.id
        started_s, last_read_s, kept = times(state, now_s)
        if before is not None and now_s < before.rate_until_s:
            # Read, or re-anchored, in the same end-rate bucket: the rate stands.
            age_s, rate, rate_until_s = (
                before.view.age_s,
                before.view.end_rate_per_s,
                before.rate_until_s,
            )
        else:
            age_s = now_s - started_s
            age_s = age_s if age_s > 0.0 else 0.0
            rate, until_age_s = self._rates.held(state.responder_id, age_s=age_s)
            rate_until_s = started_s + until_age_s
        page: int | None = None
        arrivals_from, arrivals_to = -math.inf, math.inf
        if anchor is not None:
            if (
                before is not None
                and before.anchor is anchor
                and before.arrivals_from <= arrivals < before.arrivals_to
            ):
                page, arrivals_from, arrivals_to = (
                    before.view.page,
                    before.arrivals_from,
                    before.arrivals_to,
                )
            else:
                page, arrivals_from, arrivals_to = positions.held_page(anchor, arrivals=arrivals)
        view = RunningView(execution_id, state.responder_id, age_s, last_read_s, page, rate)
        entry = _Held(view, anchor, arrivals_from, arrivals_to, rate_until_s)
        self._held[execution_id] = entry
        self._views[execution_id] = view
        if not kept:
            self._volatile.add(execution_id)
            return
        self._queue(execution_id, entry, before=before)

    def _queue(self, execution_id: str, entry: _Held, *, before: _Held | None) -> None:
        # A check already queued for the same limit still stands (a read only touched
        # the view): queue only the limits that moved.
        if entry.arrivals_to != math.inf and (
            before is None or before.arrivals_to != entry.arrivals_to
        ):
            heapq.heappush(self._page_up, (entry.arrivals_to, execution_id))
        if entry.arrivals_from != -math.inf and (
            before is None or before.arrivals_from != entry.arrivals_from
        ):
            heapq.heappush(self._page_down, (-entry.arrivals_from, execution_id))
        if before is None or before.rate_until_s != entry.rate_until_s:
            heapq.heappush(self._rate_due, (entry.rate_until_s, execution_id))

    def _rebuild_queues(self) -> None:
        self._page_up.clear()
        self._page_down.clear()
        self._rate_due.clear()
        for execution_id, entry in self._held.items():
            if execution_id not in self._volatile:
                self._queue(execution_id, entry, before=None)
