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
  (plus refreshed executions, whose `last_seen_at` drives the round-robin), and once the
  first poll is done a cycle that changed nothing writes nothing at all.
- What the engine remembers of the store between cycles (`KnownMarkers`, the live set)
  is what the store holds, or is dropped: after a commit that may not have landed, a
  failed cycle (the live set), when the cursor shows another writer committed since,
  and when another replica may poll (`forget`).
- Invalid items are skipped and counted in the report; they never fail the cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from types import MappingProxyType

import structlog

from relay.clock import utcnow
from relay.domain.alerts import Alert
from relay.domain.cadence import Read
from relay.domain.detect import (
    FirstSeenPolicy,
    is_live,
    is_unchanged,
    live_after,
    observe,
    vanished,
)
from relay.domain.paging import ScanPlan, pick_refreshes
from relay.domain.state import SourceCursor, TrackedExecution
from relay.errors import (
    SourceInvalidResponse,
    SourceNotFound,
    SourceRateLimited,
    SourceRejected,
    SourceUnauthorized,
)
from relay.pipeline.alerting import AlertPlan, AlertPlanner
from relay.pipeline.cycle import CycleReport, CycleWork, PageSeen, ScanLimits
from relay.pipeline.known import KnownMarkers
from relay.source.client import ZaiaClient
from relay.source.pages import ItemProblem, PageEntry
from relay.store import CycleResult, Store

log = structlog.get_logger("relay.pipeline.engine")


@dataclass(frozen=True, slots=True)
class _Begun:
    """What a cycle knows before it reads: whether the source was ever polled, and the
    live executions it tracks, by id (read only)."""

    first_poll: bool
    live: Mapping[str, TrackedExecution]


_Reader = Callable[[_Begun, CycleWork], Awaitable[ScanPlan]]


class SourceEngine:
    """Runs cycles of one source against its client and the shared store."""

    def __init__(
        self,
        limits: ScanLimits,
        *,
        client: ZaiaClient,
        store: Store,
        planner: AlertPlanner | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._limits = limits
        self._client = client
        self._store = store
        self._planner = planner
        self._now = now
        # What the store holds, as of this process's last commit: the live executions
        # (reads plan from them instead of loading every running state for each
        # request) and the markers of executions seen lately. A steady-state read of
        # known history then asks the store only for the cursor, whose time says whether
        # anyone else (another replica, `zaia-relay once`) committed since.
        self._running: dict[str, TrackedExecution] | None = None
        self._known = KnownMarkers()
        self._committed_at: datetime | None = None
        # When this process began a source's first start (adaptive), if it did.
        self._watch_since: datetime | None = None

    @property
    def source(self) -> str:
        return self._limits.source

    @property
    def limits(self) -> ScanLimits:
        return self._limits

    async def run_cycle(self, *, commit: bool = True) -> CycleReport:
        """A whole fixed-rate cycle: scan pages until every tracked running execution is
        covered (or the scan's budget ends), re-read the rest by id, then (unless
        `commit=False`, for dry runs) persist it all."""
        report = await self._cycle(self._scan_and_refresh, commit=commit)
        if report.first_poll and report.stop_reason == "max_pages":
            # A fixed first start never looks deeper: what runs below is never tracked.
            log.warning(
                "poll.first_start_truncated",
                source=self.source,
                pages=report.pages,
                hint="running executions deeper than max_pages are not tracked: raise "
                "max_pages, or use polling: adaptive (it sweeps down to discovery_pages)",
            )
        return report

    async def run_read(self, read: Read, *, max_pages: int | None = None) -> CycleReport:
        """One read of the adaptive cadence, committed as a cycle of its own: the top of
        the list (from `read.page`, pages until known history, at most `max_pages`), one
        page, a sweep page, or one id."""
        pages = self._limits.max_pages if max_pages is None else max_pages
        return await self._cycle(partial(self._read_place, read, pages), commit=True)

    def running_now(self) -> Mapping[str, TrackedExecution] | None:
        """The live executions by id as of the last committed cycle (a read-only view),
        or None until one ran (or after a failure, when the store is the one to ask)."""
        return None if self._running is None else MappingProxyType(self._running)

    def forget(self) -> None:
        """Ask the store again before the next read (another replica may have polled)."""
        self._running = None
        self._known.clear()
        self._committed_at = None

    async def _cycle(self, reader: _Reader, *, commit: bool) -> CycleReport:
        limits = self._limits
        started_at = self._now()
        cursor = await self._store.get_cursor(limits.source)
        if self._committed_at is not None and (
            cursor is None or cursor.last_success_at != self._committed_at
        ):
            self.forget()  # another writer committed since: what this one knew is stale
        first_poll = cursor is None or not cursor.first_poll_done
        if self._running is None:
            live_before = {
                state.id: state
                for state in await self._store.running_states(limits.source)
                if is_live(state)
            }
        else:
            live_before = self._running
        self._running = None  # until this cycle has committed
        # Not copied: nothing changes `live_before` (the next live set is a new dict).
        work = CycleWork(running=live_before)
        scan = await reader(_Begun(first_poll=first_poll, live=live_before), work)

        now = self._now()
        alert_plan = AlertPlan()
        if self._planner is not None:
            alert_plan = await self._planner.plan(
                now=now,
                transitions=work.transitions,
                changed=work.states,
                running_before=live_before,
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
        if commit and result.changes_nothing and not first_poll:
            # Only the cursor's time would change, which nothing reads back: an idle
            # read costs the store nothing.
            new_alert_ids = set()
        elif commit:
            try:
                outcome = await self._store.commit_cycle(result)
            except BaseException:
                self._known.clear()  # whether the commit landed is not known
                raise
            new_alert_ids = set(outcome.new_alert_ids)
        else:
            new_alert_ids = await self._not_yet_stored(alert_plan.alerts)
        live = live_after(live_before, work.states)
        if commit:
            self._running = live
            self._known.store(work.states, work.states)
            if not result.changes_nothing or first_poll:
                self._committed_at = now
        notifications = tuple(
            n
            for n in alert_plan.notifications
            if n.alert.id in new_alert_ids or not n.alert.execution
        )
        return CycleReport(
            source=limits.source,
            started_at=started_at,
            first_poll=first_poll,
            pages=len(work.pages),
            refreshes=len(work.refreshed),
            observed=work.observed,
            stop_reason=scan.stop_reason,
            running=len(live),
            transitions=tuple(work.transitions),
            problems=tuple(work.problems),
            vanished=work.vanished,
            new_alerts=tuple(a for a in alert_plan.alerts if a.id in new_alert_ids),
            resolved_alerts=alert_plan.resolved,
            notifications=notifications,
            pages_seen=tuple(work.pages),
            refreshed_ids=tuple(work.refreshed),
        )

    def _policy(self, *, first_poll: bool) -> FirstSeenPolicy:
        return FirstSeenPolicy.for_cycle(
            first_poll=first_poll,
            on_first_start=self._limits.on_first_start,
            backfill_window=self._limits.backfill_window,
        )

    async def _scan_and_refresh(self, begun: _Begun, work: CycleWork) -> ScanPlan:
        limits = self._limits
        running = list(begun.live.values())
        # Listed by last change, a running execution that changed is at the top and one
        # that did not needs no look: only a list by creation must cover them all.
        must_cover = [s.id for s in running if is_live(s)] if limits.list_order == "created" else []
        plan = ScanPlan.start(
            tracked_running=must_cover, max_pages=limits.max_pages, first_poll=begun.first_poll
        )
        policy = self._policy(first_poll=begun.first_poll)
        plan = await self._scan(plan, policy=policy, work=work)
        refresh_ids = pick_refreshes(
            running, uncovered=plan.uncovered_running, limit=limits.max_refreshes_per_cycle
        )
        by_id = {s.id: s for s in running}
        for execution_id in refresh_ids:
            if not await self._refresh(by_id[execution_id], policy=policy, work=work):
                break  # rate limited: the pages read still count, the rest waits a cycle
        return plan

    async def _read_place(
        self, read: Read, max_pages: int, begun: _Begun, work: CycleWork
    ) -> ScanPlan:
        if read.kind == "top" and begun.first_poll and self._watch_since is None:
            self._watch_since = self._now()
        if read.kind == "top":
            # The top is read until known, unchanged history; on a first start that is
            # one page, and the sweep reads the rest down to `discovery_pages`, spread.
            plan = ScanPlan.start(
                tracked_running=(),
                max_pages=1 if begun.first_poll else max_pages,
                first_poll=False,
                first_page=read.page,
            )
            return await self._scan(
                plan, policy=self._policy(first_poll=begun.first_poll), work=work
            )
        # Below the top, an execution seen for the first time was there before the relay
        # looked: it is recorded as a first start records what exists, unless it ended
        # after this process's first start began (it was running then: a change).
        baseline = replace(self._policy(first_poll=True), ended_since=self._watch_since)
        if read.kind in ("page", "sweep"):
            await self._read_page(read.page, policy=baseline, work=work)
            return ScanPlan.start(tracked_running=(), max_pages=1, first_poll=False)
        previous = None if read.execution_id is None else begun.live.get(read.execution_id)
        if previous is not None:
            await self._refresh(previous, policy=baseline, work=work)
        return ScanPlan.start(tracked_running=(), max_pages=1, first_poll=False)

    async def _scan(self, plan: ScanPlan, *, policy: FirstSeenPolicy, work: CycleWork) -> ScanPlan:
        """Read pages newest first for as long as the plan says; return the plan as it
        ended (what it covered, and why it stopped)."""
        page_size = self._limits.page_size
        while plan.should_read_next:
            page = await self._client.list_page(plan.next_page, page_size=page_size)
            work.problems.extend(page.header_problems)
            work.pages.append(
                PageSeen(plan.next_page, tuple(page.ids), last=page.raw_count < page_size)
            )
            fresh = self._fresh_entries(plan, page.entries)
            unchanged = await self._observe_page(fresh, policy=policy, work=work)
            plan = plan.after_page(
                ids=page.ids,
                raw_count=page.raw_count,
                page_size=page_size,
                unchanged_ids=unchanged,
            )
        return plan

    async def _read_page(self, number: int, *, policy: FirstSeenPolicy, work: CycleWork) -> None:
        """Read one page and observe what it shows."""
        page_size = self._limits.page_size
        page = await self._client.list_page(number, page_size=page_size)
        work.problems.extend(page.header_problems)
        work.pages.append(PageSeen(number, tuple(page.ids), last=page.raw_count < page_size))
        plan = ScanPlan.start(tracked_running=(), max_pages=1, first_poll=False)
        await self._observe_page(self._fresh_entries(plan, page.entries), policy=policy, work=work)

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
        self, entries: Sequence[PageEntry], *, policy: FirstSeenPolicy, work: CycleWork
    ) -> set[str]:
        """Observe the page's fresh entries; return the ids that were known and unchanged.

        Known history is recognised from the stored change markers alone; only entries
        that changed are fully validated and have their whole state loaded: on a
        steady-state page that is a handful of items, not a hundred."""
        source = self._limits.source
        markers, unknown = self._known.split(e.id for e in entries)
        if unknown:
            loaded = await self._store.load_markers(source, unknown)
            self._known.store(unknown, loaded)
            markers.update(loaded)
        unchanged = {e.id for e in entries if is_unchanged(markers.get(e.id), e)}
        work.observed += len(entries)
        changed = [e for e in entries if e.id not in unchanged]
        if not changed:
            return unchanged
        stored = {e.id: work.running[e.id] for e in changed if e.id in work.running}
        if to_load := [e.id for e in changed if e.id in markers and e.id not in stored]:
            stored.update(await self._store.load_states(source, to_load))
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
        self, previous: TrackedExecution, *, policy: FirstSeenPolicy, work: CycleWork
    ) -> bool:
        """Re-read one execution by id; False when the API said to slow down (429)."""
        problem: str | None = None
        work.refreshed.append(previous.id)
        try:
            execution = await self._client.get_execution(previous.id)
        except SourceNotFound:
            work.vanished += 1
            work.states[previous.id] = vanished(previous, now=self._now())
            log.info("execution.vanished", source=self._limits.source, execution_id=previous.id)
            return True
        except SourceRateLimited as exc:
            # A read by id is never worth stalling the list for: it is read again later.
            log.warning("poll.refresh_rate_limited", source=self._limits.source, error=str(exc))
            return False
        except (SourceInvalidResponse, SourceRejected, SourceUnauthorized) as exc:
            # One execution the API will not show us (a shape we do not know, or no
            # access to it) must not fail every cycle: count it, and move it to the back
            # of the round-robin so the others still get their turn.
            problem = str(exc)
        if problem is not None:
            work.problems.append(ItemProblem(-1, previous.id, problem))
            work.states[previous.id] = replace(previous, last_seen_at=self._now())
            return True
        work.observed += 1
        work.record(
            observe(previous, execution, source=self._limits.source, now=self._now(), policy=policy)
        )
        return True
