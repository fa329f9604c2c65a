"""The adaptive poll loop of one source (`polling: adaptive`): one read at a time, where
a transition is likeliest, inside the source's request budget.

Each turn asks `domain.cadence.plan_next` what to read (the top of the list, a page that
holds tracked running executions, one execution by id, or a sweep page), runs that read
as a cycle of its own through the poller (so timeouts, failures, leadership and health
are handled as for fixed cycles) and learns from what it saw: where tracked executions
are in the list (`domain.positions`), how long executions of each responder run
(`domain.lifetimes`), when each was last read.

Invariants:
- Every read is a whole cycle: committed in one transaction, so exactly-once, restarts
  and `kill -9` behave as with fixed cycles; only the order and pace of reads differ.
- Every request passes the source's `BudgetGate`: the budget holds at the API whatever
  the cadence asks for.
- A first start reads the top, then sweeps pages 2..`discovery_pages` in the slots the
  cadence leaves over (spread, not a burst). After a restart, tracked executions whose
  page is not known are found by the same sweep, or read by id when their bound is due.
- A top scan that stops at its page limit before reaching known history continues where
  it stopped on the next turn, before anything else: nothing that arrived is skipped.
- Nothing here drops a tracked execution: it stays tracked until a read shows it ended,
  purged or gone (the engine's live set), however deep it slides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import structlog

from relay.domain.cadence import CadenceInputs, EndRates, Plan, Read, plan_next
from relay.domain.lifetimes import Lifetimes
from relay.domain.positions import ListPositions
from relay.domain.schedule import failure_delay_s
from relay.domain.state import TrackedExecution
from relay.pipeline.cycle import CycleReport
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import STANDBY_CHECK_S, Poller, SourceHealth
from relay.pipeline.views import HeldViews
from relay.source.gate import BudgetGate
from relay.vocab import TERMINAL_STATUSES

log = structlog.get_logger("relay.pipeline.adaptive")

OnPlan = Callable[[str, Plan], None]
# How often, at most, the "budget too small" warning is repeated.
_WARN_EVERY_S = 300.0
# How long a plan's end rates are reused while executions end (see `EndRates`).
_END_RATES_FOR_S = 10.0


@dataclass(frozen=True, slots=True)
class _Sweep:
    """Pages read down the list to find running executions: on a first start down to
    `discovery_pages`; after a restart until every tracked execution is placed."""

    next_page: int
    relocating: bool


class AdaptivePoller:
    """Runs the adaptive cadence of one source until cancelled; its limits are the
    engine's, its clocks, sleep and randomness the poller's."""

    def __init__(
        self,
        poller: Poller,
        engine: SourceEngine,
        *,
        gate: BudgetGate,
        max_backoff_s: float = 300.0,
        on_plan: OnPlan | None = None,
    ) -> None:
        self._poller = poller
        self._engine = engine
        self._gate = gate
        self._on_plan = on_plan
        limits = engine.limits
        self._poll_interval_s = limits.poll_interval.total_seconds()
        self._max_backoff_s = max_backoff_s
        # A top scan reads pages back to back; at the budget's pace it must still end
        # well within the cycle's timeout.
        pace_s = gate.budget.window_s / gate.budget.limit
        cycle_timeout_s = limits.cycle_timeout.total_seconds()
        self._top_pages = max(1, min(limits.max_pages, int(cycle_timeout_s / 2 / pace_s)))
        self._positions = ListPositions(page_size=limits.page_size)
        self._lifetimes = Lifetimes()
        self._end_rates: EndRates | None = None
        self._end_rates_since_s = float("-inf")
        self._last_read_s: dict[str, float] = {}
        self._started_s: dict[str, float] = {}
        self._views = HeldViews()
        self._calibration: frozenset[str] = frozenset()
        self._last_top_s: float | None = None
        self._top_from: int | None = None
        self._sweep: _Sweep | None = None
        self._last_sweep_s = float("-inf")
        self._warned_at_s = -_WARN_EVERY_S
        poller.health.mode = "adaptive"
        poller.health.budget_per_minute = gate.budget.limit * 60.0 / gate.budget.window_s

    @property
    def health(self) -> SourceHealth:
        return self._poller.health

    async def run(self, *, max_reads: int | None = None) -> None:
        """Read until cancelled (or `max_reads` reads, for tests and benches)."""
        reads = 0
        while max_reads is None or reads < max_reads:
            read, wait_s = self._next()
            if read is None:
                await self._poller.timing.sleep(wait_s)
                continue
            began_s = self._poller.timing.clock()
            pages = self._top_pages if read.kind == "top" else 1
            retry_after_s = await self._poller.run_one(
                partial(self._engine.run_read, read, max_pages=pages)
            )
            reads += 1
            health = self._poller.health
            if health.standby:
                self._reset()
                await self._poller.timing.sleep(min(self._poll_interval_s, STANDBY_CHECK_S))
            elif health.last_outcome == "ok" and health.last_report is not None:
                self._learn(read, health.last_report, read_at_s=began_s)
            else:
                await self._poller.timing.sleep(self._failure_wait_s(retry_after_s))

    # --- choosing ---------------------------------------------------------------------

    def _next(self) -> tuple[Read | None, float]:
        if self._top_from is not None:
            return Read("top", page=self._top_from), 0.0
        running = self._engine.running_now()
        if running is None or self._last_top_s is None:
            return Read("top"), 0.0
        now_s = self._poller.timing.clock()
        end_rates = self._current_end_rates(now_s)
        plan = plan_next(
            CadenceInputs(
                now_s=now_s,
                running=self._views.views(
                    running,
                    now_s=now_s,
                    positions=self._positions,
                    end_rates=end_rates,
                    times=self._times,
                ),
                last_top_read_s=self._last_top_s,
                arrival_rate_per_s=self._positions.arrival_rate_per_s,
                allowed_rate_per_s=self._gate.budget.rate_per_s,
                poll_interval_s=self._poll_interval_s,
                lifetimes=self._lifetimes,
                end_rates=end_rates,
                sweep_page=None if self._sweep is None else self._sweep.next_page,
                last_sweep_s=self._last_sweep_s,
            )
        )
        self._report(plan, running=len(running), now_s=now_s)
        return plan.read, max(0.0, plan.due_at_s - now_s)

    def _current_end_rates(self, now_s: float) -> EndRates:
        rates = self._end_rates
        if rates is None or (
            rates.lifetimes is not self._lifetimes
            and now_s - self._end_rates_since_s >= _END_RATES_FOR_S
        ):
            rates = EndRates(self._lifetimes, horizon_s=self._poll_interval_s)
            self._end_rates, self._end_rates_since_s = rates, now_s
        return rates

    def _times(self, state: TrackedExecution, now_s: float) -> tuple[float, float, bool]:
        """When `state` started and was last read, on the cadence's clock (`views.Times`)."""
        execution_id = state.id
        started_s = self._started_s.get(execution_id)
        if started_s is None:
            # Wall-clock times, turned into the cadence's monotonic seconds once per
            # execution.
            started_s = self._started_s[execution_id] = self._monotonic_s(state.started_at, now_s)
        last_read_s = self._last_read_s.get(execution_id)
        if last_read_s is None:
            # Not read by this process yet: the store says when a cycle last saw it.
            return started_s, min(now_s, self._monotonic_s(state.last_seen_at, now_s)), False
        return started_s, last_read_s, True

    def _monotonic_s(self, at: datetime, now_s: float) -> float:
        """A wall-clock time on the poller's monotonic clock, `now_s` being now."""
        return now_s - (self._poller.timing.wall_clock() - at).total_seconds()

    def _report(self, plan: Plan, *, running: int, now_s: float) -> None:
        health = self._poller.health
        health.rate_per_minute = self._gate.budget.rate_per_s * 60.0
        health.staleness_s = plan.staleness_s
        health.over_budget = plan.over_budget
        if self._on_plan is not None:
            self._on_plan(self._engine.source, plan)
        if plan.over_budget and now_s - self._warned_at_s >= _WARN_EVERY_S:
            self._warned_at_s = now_s
            log.warning(
                "poll.over_budget",
                source=self._engine.source,
                running=running,
                reads_needed=len(plan.places),
                poll_interval_s=self._poll_interval_s,
                budget_per_minute=health.budget_per_minute,
                staleness_s=round(plan.staleness_s, 1),
                hint="the budget cannot read every running execution within poll_interval: "
                "raise request_budget or poll_interval",
            )

    # --- learning ---------------------------------------------------------------------

    def _learn(self, read: Read, report: CycleReport, *, read_at_s: float) -> None:
        live = self._engine.running_now() or {}
        for transition in report.transitions:
            execution = transition.execution
            if transition.kind == "status" and transition.to_status in TERMINAL_STATUSES:
                ended_at = execution.ended_at or execution.updated_at
                duration_s = (ended_at - execution.started_at).total_seconds()
                self._lifetimes = self._lifetimes.ended(execution.responder_id, duration_s)
        for seen in report.pages_seen:
            # The tracked set as it is (no union of a thousand ids built for each page).
            also = self._calibration | set(seen.ids) if seen.page == 1 else self._calibration
            anchored = self._positions.anchors
            self._positions = self._positions.after_page(
                seen.page, seen.ids, now_s=read_at_s, keep=live.keys(), also_keep=also
            )
            # Re-anchored, and anchors lost: their views change.
            self._views.touch(seen.ids)
            self._views.touch(anchored.keys() - self._positions.anchors.keys())
            if seen.page == 1:
                self._calibration = frozenset(seen.ids)
            self._mark_read(seen.ids, live=live, at_s=read_at_s)
        self._mark_read(report.refreshed_ids, live=live, at_s=read_at_s)
        self._forget_ended(live)
        if read.kind == "top":
            self._after_top(report, live=live, read_at_s=read_at_s)
        elif read.kind == "sweep":
            self._last_sweep_s = read_at_s
            self._after_sweep(report, live=live)

    def _mark_read(self, ids: tuple[str, ...], *, live: Mapping[str, object], at_s: float) -> None:
        for execution_id in ids:
            if execution_id in live:
                self._last_read_s[execution_id] = at_s
        self._views.touch(ids)

    def _forget_ended(self, live: Mapping[str, TrackedExecution]) -> None:
        # Set differences at C speed: this runs on every read, and a read ends a handful
        # of a thousand tracked executions.
        for seen in (self._last_read_s, self._started_s):
            for execution_id in seen.keys() - live.keys():
                del seen[execution_id]
        unanchored = self._positions.anchors.keys() - live.keys() - self._calibration
        self._positions = self._positions.forget(unanchored)

    def _after_top(
        self, report: CycleReport, *, live: Mapping[str, TrackedExecution], read_at_s: float
    ) -> None:
        first_top = self._last_top_s is None
        self._last_top_s = read_at_s
        last_seen = report.pages_seen[-1] if report.pages_seen else None
        caught_up = report.stop_reason != "max_pages" or report.first_poll
        self._top_from = None if caught_up or last_seen is None else last_seen.page + 1
        if not first_top or last_seen is None or last_seen.last:
            return
        if report.first_poll:
            self._sweep = _Sweep(next_page=2, relocating=False)
        elif self._unplaced(live):
            self._sweep = _Sweep(next_page=2, relocating=True)

    def _after_sweep(self, report: CycleReport, *, live: Mapping[str, TrackedExecution]) -> None:
        if self._sweep is None or not report.pages_seen:
            return
        seen = report.pages_seen[-1]
        done = seen.last or seen.page >= self._engine.limits.discovery_pages
        unplaced = self._unplaced(live)
        if self._sweep.relocating and not unplaced:
            done = True
        self._sweep = None if done else _Sweep(seen.page + 1, self._sweep.relocating)
        if done:
            log.info(
                "poll.sweep_done",
                source=self._engine.source,
                pages=seen.page,
                tracked=len(live),
                placed=len(live) - len(unplaced),
            )

    def _unplaced(self, live: Mapping[str, TrackedExecution]) -> list[str]:
        """Tracked executions whose page is not known (after `_learn` placed what it saw)."""
        return [
            execution_id for execution_id in live if execution_id not in self._positions.anchors
        ]

    # --- failures ---------------------------------------------------------------------

    def _failure_wait_s(self, retry_after_s: float | None) -> float:
        delay_s = failure_delay_s(
            consecutive_failures=self._poller.health.consecutive_failures,
            interval_s=min(1.0, self._poll_interval_s),
            max_delay_s=self._max_backoff_s,
            rng=self._poller.timing.rng,
        )
        if retry_after_s is not None:
            delay_s = max(delay_s, retry_after_s)
        return delay_s

    def _reset(self) -> None:
        """Another replica polls now: what this one knew of the list goes stale."""
        self._engine.forget()
        self._positions = ListPositions(page_size=self._positions.page_size)
        self._last_read_s.clear()
        self._started_s.clear()
        self._views.clear()
        self._calibration = frozenset()
        self._last_top_s = None
        self._top_from = None
        self._sweep = None
