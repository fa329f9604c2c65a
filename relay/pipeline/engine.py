"""One poll cycle of one source: fetch -> detect -> persist, in that order.

Invariants:
- Nothing is persisted until the whole cycle has been read; then the changed states,
  the transitions they caused, the alerts and notifications they raised (see
  `alerting`) and the source cursor go to the store in ONE transaction.
  A cycle that fails or is cancelled midway (timeout, `kill -9`) leaves the stored state
  as it was, so the next cycle finds the same changes again: nothing is lost, and
  nothing already committed is produced twice.
- Items are observed at most once per cycle, whatever the page boundaries do.
- Unchanged executions are not rewritten: a steady-state cycle writes only what changed
  (plus refreshed executions, whose `last_seen_at` drives the round-robin).
- Invalid items are skipped and counted in the report; they never fail the cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import structlog

from relay.domain.alerts import Alert, Notification
from relay.domain.detect import (
    FirstSeenPolicy,
    Observation,
    is_live,
    is_unchanged,
    live_after,
    observe,
    vanished,
)
from relay.domain.paging import ScanPlan, StopReason, pick_refreshes
from relay.domain.state import SourceCursor, TrackedExecution, Transition
from relay.errors import (
    SourceInvalidResponse,
    SourceNotFound,
    SourceRejected,
    SourceUnauthorized,
)
from relay.pipeline.alerting import AlertPlan, AlertPlanner
from relay.source.client import ZaiaClient
from relay.source.pages import ItemProblem, PageEntry
from relay.store import CycleResult, Store

if TYPE_CHECKING:
    from relay.settings import SourceSettings

log = structlog.get_logger("relay.pipeline.engine")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanLimits:
    """How far one cycle of a source may read."""

    source: str
    page_size: int = 100
    max_pages: int = 20
    max_refreshes_per_cycle: int = 50
    list_order: Literal["created", "updated"] = "created"
    on_first_start: Literal["baseline", "backfill"] = "baseline"
    backfill_window: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, source: SourceSettings) -> ScanLimits:
        return cls(
            source=source.name,
            page_size=source.page_size,
            max_pages=source.max_pages,
            max_refreshes_per_cycle=source.max_refreshes_per_cycle,
            list_order=source.list_order,
            on_first_start=source.on_first_start,
            backfill_window=source.backfill_window,
        )


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did, for logs, metrics and `zaia-relay once`."""

    source: str
    started_at: datetime
    first_poll: bool
    pages: int
    refreshes: int
    observed: int
    stop_reason: StopReason | None
    running: int
    transitions: tuple[Transition, ...]
    problems: tuple[ItemProblem, ...] = field(default=())
    vanished: int = 0
    # Alerts stored for the first time by this cycle (silenced ones included, marked),
    # windowed alerts that resolved, and the notifications it queued.
    new_alerts: tuple[Alert, ...] = ()
    resolved_alerts: tuple[Alert, ...] = ()
    notifications: tuple[Notification, ...] = ()
    # A `Retry-After` the API sent during an otherwise successful cycle (/nestings).
    retry_after_s: float | None = None

    @property
    def alertable(self) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.alertable)


@dataclass
class _CycleWork:
    """Mutable scratchpad of one cycle; becomes a CycleResult at the end."""

    states: dict[str, TrackedExecution] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    observed: int = 0
    vanished: int = 0

    def record(self, observation: Observation) -> None:
        self.states[observation.state.id] = observation.state
        self.transitions.extend(observation.transitions)


class SourceEngine:
    """Runs cycles of one source against its client and the shared store."""

    def __init__(
        self,
        limits: ScanLimits,
        *,
        client: ZaiaClient,
        store: Store,
        planner: AlertPlanner | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._limits = limits
        self._client = client
        self._store = store
        self._planner = planner
        self._now = now

    @property
    def source(self) -> str:
        return self._limits.source

    async def run_cycle(self, *, commit: bool = True) -> CycleReport:
        """Read, detect and (unless `commit=False`, for dry runs) persist one cycle."""
        limits = self._limits
        started_at = self._now()
        cursor = await self._store.get_cursor(limits.source)
        first_poll = cursor is None or not cursor.first_poll_done
        policy = FirstSeenPolicy.for_cycle(
            first_poll=first_poll,
            on_first_start=limits.on_first_start,
            backfill_window=limits.backfill_window,
        )
        running = await self._store.running_states(limits.source)
        # Listed by last change, a running execution that changed is at the top and one
        # that did not needs no look: only a list by creation must cover them all.
        must_cover = [s.id for s in running if is_live(s)] if limits.list_order == "created" else []
        plan = ScanPlan.start(
            tracked_running=must_cover,
            max_pages=limits.max_pages,
            first_poll=first_poll,
        )
        work = _CycleWork()
        plan = await self._scan(plan, policy=policy, work=work)
        refresh_ids = pick_refreshes(
            running, uncovered=plan.uncovered_running, limit=limits.max_refreshes_per_cycle
        )
        by_id = {s.id: s for s in running}
        for execution_id in refresh_ids:
            await self._refresh(by_id[execution_id], policy=policy, work=work)

        now = self._now()
        alert_plan = AlertPlan()
        if self._planner is not None:
            alert_plan = await self._planner.plan(
                now=now, transitions=work.transitions, changed=work.states, running_before=running
            )
        result = CycleResult(
            source=limits.source,
            states=list(work.states.values()),
            transitions=work.transitions,
            cursor=SourceCursor(source=limits.source, first_poll_done=True, last_success_at=now),
            alerts=alert_plan.alerts,
            notifications=alert_plan.notifications,
            group_states=alert_plan.group_states,
        )
        if commit:
            outcome = await self._store.commit_cycle(result)
            new_alert_ids = set(outcome.new_alert_ids)
        else:
            new_alert_ids = await self._not_yet_stored(alert_plan.alerts)
        notifications = tuple(
            n
            for n in alert_plan.notifications
            if n.alert.id in new_alert_ids or not n.alert.execution
        )
        return CycleReport(
            source=limits.source,
            started_at=started_at,
            first_poll=first_poll,
            pages=plan.pages_read,
            refreshes=len(refresh_ids),
            observed=work.observed,
            stop_reason=plan.stop_reason,
            running=len(live_after(running, work.states)),
            transitions=tuple(work.transitions),
            problems=tuple(work.problems),
            vanished=work.vanished,
            new_alerts=tuple(a for a in alert_plan.alerts if a.id in new_alert_ids),
            resolved_alerts=alert_plan.resolved,
            notifications=notifications,
            retry_after_s=alert_plan.retry_after_s,
        )

    async def _scan(self, plan: ScanPlan, *, policy: FirstSeenPolicy, work: _CycleWork) -> ScanPlan:
        """Read pages newest first for as long as the plan says; return the plan as it
        ended (what it covered, and why it stopped)."""
        page_size = self._limits.page_size
        while plan.should_read_next:
            page = await self._client.list_page(plan.next_page, page_size=page_size)
            work.problems.extend(page.header_problems)
            fresh = self._fresh_entries(plan, page.entries)
            unchanged = await self._observe_page(fresh, policy=policy, work=work)
            plan = plan.after_page(
                ids=page.ids,
                raw_count=page.raw_count,
                page_size=page_size,
                unchanged_ids=unchanged,
            )
        return plan

    async def _not_yet_stored(self, alerts: Sequence[Alert]) -> set[str]:
        """For a dry run: the alerts a commit would store as new (a per-execution alert
        fires once, so one already stored would send nothing)."""
        fresh: set[str] = set()
        for alert in alerts:
            if alert.execution is None or await self._store.get_alert(alert.id) is None:
                fresh.add(alert.id)
        return fresh

    @staticmethod
    def _fresh_entries(plan: ScanPlan, entries: Sequence[PageEntry]) -> list[PageEntry]:
        wanted = set(plan.unseen(e.id for e in entries))
        fresh: list[PageEntry] = []
        for entry in entries:
            if entry.id in wanted:
                wanted.discard(entry.id)
                fresh.append(entry)
        return fresh

    async def _observe_page(
        self, entries: Sequence[PageEntry], *, policy: FirstSeenPolicy, work: _CycleWork
    ) -> set[str]:
        """Observe the page's fresh entries; return the ids that were known and unchanged.

        Known history is recognised from the stored change markers alone; only entries
        that changed are fully validated and have their whole state loaded: on a
        steady-state page that is a handful of items, not a hundred."""
        source = self._limits.source
        markers = await self._store.load_markers(source, [e.id for e in entries])
        unchanged = {e.id for e in entries if is_unchanged(markers.get(e.id), e)}
        work.observed += len(entries)
        changed = [e for e in entries if e.id not in unchanged]
        if not changed:
            return unchanged
        stored = await self._store.load_states(source, [e.id for e in changed if e.id in markers])
        now = self._now()
        for entry in changed:
            parsed = entry.parse()
            if isinstance(parsed, ItemProblem):
                work.problems.append(parsed)
                continue
            work.record(
                observe(stored.get(entry.id), parsed, source=source, now=now, policy=policy)
            )
        return unchanged

    async def _refresh(
        self, previous: TrackedExecution, *, policy: FirstSeenPolicy, work: _CycleWork
    ) -> None:
        problem: str | None = None
        try:
            execution = await self._client.get_execution(previous.id)
        except SourceNotFound:
            work.vanished += 1
            work.states[previous.id] = vanished(previous, now=self._now())
            log.info("execution.vanished", source=self._limits.source, execution_id=previous.id)
            return
        except (SourceInvalidResponse, SourceRejected, SourceUnauthorized) as exc:
            # One execution the API will not show us (a shape we do not know, or no
            # access to it) must not fail every cycle: count it, and move it to the back
            # of the round-robin so the others still get their turn.
            problem = str(exc)
        if problem is not None:
            work.problems.append(ItemProblem(-1, previous.id, problem))
            work.states[previous.id] = replace(previous, last_seen_at=self._now())
            return
        work.observed += 1
        work.record(
            observe(previous, execution, source=self._limits.source, now=self._now(), policy=policy)
        )
