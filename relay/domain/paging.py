"""The scan plan of one poll cycle: which pages to read, and which executions to re-read.

Pure: the engine reads pages and asks the plan after each one whether to read the next.

How a cycle scans (pages are newest first, `pageNumber` 1, 2, ...):
1. Page 1 is always read.
2. A short page (`raw_count < page_size`, invalid items included) is the end of the
   list: stop ("end_of_list").
3. The first poll of a source has no known history: it reads until the end of the list
   or `max_pages` ("max_pages").
4. Otherwise the scan looks for *known, unchanged history*: a page holding at least one
   item that `detect.is_unchanged` says is stored and identical, not counting items
   already processed earlier in this cycle (a duplicate only proves the list shifted,
   not that older history was seen before). Once found, everything older was read by
   an earlier cycle, so the scan stops as soon as every execution tracked as live
   (`detect.is_live`) has been covered by a page of this cycle ("caught_up").
5. Live executions still uncovered at that point are found either by reading on or by
   id (`pick_refreshes`). Reading on pays off only if they are close, which is not
   known in advance, so past known history the scan tolerates at most one *barren*
   page (one that covered none of them) per execution still uncovered: it stops
   ("coverage_budget") once the barren pages read past known history reach the number
   still uncovered. Chasing one old execution costs at most one wasted page, and a
   dense band of running executions is read page by page, cheaper than one request
   each. A quiet cycle reads at most 1 + 2 x (live executions) pages.
6. `max_pages` bounds every cycle ("max_pages").

Steady-state cost: with nothing old running, a cycle reads ceil(changed / page_size)
pages plus at most one, and re-reads nothing by id; live executions within the pages it
reads anyway cost nothing extra.

Duplicates: when new executions arrive at the top during a scan, a page boundary shifts
and the next page repeats items of the previous one. `unseen` filters them: an id is
processed at most once per cycle. Under `createdAt` order new arrivals cannot make the
scan skip an item; a deletion upstream can, and the next cycle reads it.

Refreshes: live executions no page covered are re-read by id, at most `limit` a cycle,
least recently seen first (then by id). Every read sets `last_seen_at`, so each of `n`
uncovered executions is re-read within ceil(n / limit) cycles: none starves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from relay.domain.detect import is_live
from relay.domain.state import TrackedExecution

__all__ = ["ScanPlan", "StopReason", "pick_refreshes"]

StopReason = Literal["end_of_list", "caught_up", "coverage_budget", "max_pages"]


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """Immutable progress of one cycle's scan; `after_page` returns the next value."""

    tracked_running: frozenset[str]
    max_pages: int
    first_poll: bool
    pages_read: int = 0
    seen: frozenset[str] = frozenset()
    reached_end: bool = False
    # The page number that first held known, unchanged history; None until then.
    known_from_page: int | None = None
    # Pages past known history that covered no uncovered live execution.
    barren_pages: int = 0
    # The page the scan starts at: 1, or where an earlier scan that hit `max_pages`
    # stopped (an adaptive catch-up continues there instead of re-reading the top).
    first_page: int = 1

    @classmethod
    def start(
        cls,
        *,
        tracked_running: Collection[str],
        max_pages: int,
        first_poll: bool,
        first_page: int = 1,
    ) -> ScanPlan:
        """A fresh plan; `tracked_running` are the ids of the source's live states."""
        if max_pages < 1:
            raise ValueError(f"max_pages must be at least 1, got {max_pages}")
        if first_page < 1:
            raise ValueError(f"pages start at 1, got {first_page}")
        return cls(
            tracked_running=frozenset(tracked_running),
            max_pages=max_pages,
            first_poll=first_poll,
            first_page=first_page,
        )

    @property
    def next_page(self) -> int:
        """The `pageNumber` to read next."""
        return self.first_page + self.pages_read

    @property
    def uncovered_running(self) -> frozenset[str]:
        """Live executions no page of this cycle has shown (yet)."""
        return self.tracked_running - self.seen

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the scan is over, or None while it should read the next page."""
        if self.pages_read == 0:
            return None
        if self.reached_end:
            return "end_of_list"
        if not self.first_poll and self.known_from_page is not None:
            uncovered = len(self.uncovered_running)
            if uncovered == 0:
                return "caught_up"
            if uncovered <= self.barren_pages:
                return "coverage_budget"
        if self.pages_read >= self.max_pages:
            return "max_pages"
        return None

    @property
    def should_read_next(self) -> bool:
        return self.stop_reason is None

    def unseen(self, ids: Iterable[str]) -> list[str]:
        """`ids` not yet processed this cycle, in order, each once: the items to observe."""
        fresh: list[str] = []
        taken: set[str] = set()
        for execution_id in ids:
            if execution_id not in self.seen and execution_id not in taken:
                taken.add(execution_id)
                fresh.append(execution_id)
        return fresh

    def after_page(
        self,
        *,
        ids: Sequence[str],
        raw_count: int,
        page_size: int,
        unchanged_ids: Collection[str],
    ) -> ScanPlan:
        """Record page `next_page`: the ids of its valid items, how many items the API
        sent (`raw_count`, invalid ones included) and which ids were known, unchanged
        before this cycle touched them."""
        if not self.should_read_next:
            raise ValueError(f"the scan is over ({self.stop_reason}); no page should be read")
        page = self.next_page
        known_from_page = self.known_from_page
        if known_from_page is None and any(
            execution_id in unchanged_ids and execution_id not in self.seen for execution_id in ids
        ):
            known_from_page = page
        barren_pages = self.barren_pages
        if known_from_page is not None and known_from_page < page:
            barren_pages += self.uncovered_running.isdisjoint(ids)
        return replace(
            self,
            pages_read=self.pages_read + 1,
            seen=self.seen | frozenset(ids),
            reached_end=raw_count < page_size,
            known_from_page=known_from_page,
            barren_pages=barren_pages,
        )


def pick_refreshes(
    running: Iterable[TrackedExecution], *, uncovered: Collection[str], limit: int
) -> list[str]:
    """Ids of the uncovered live executions to re-read by id this cycle, at most `limit`,
    least recently seen first, then by id (round-robin: none starves)."""
    if limit <= 0:
        return []
    candidates = {state.id: state for state in running if state.id in uncovered and is_live(state)}
    ordered = sorted(candidates.values(), key=lambda state: (state.last_seen_at, state.id))
    return [state.id for state in ordered[:limit]]
