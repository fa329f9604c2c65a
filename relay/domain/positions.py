"""Where in the executions list (newest first) a tracked execution is now.

Pure: times are monotonic seconds passed in; `ListPositions` is a frozen value and each
read returns the next one.

The list is ordered by creation, newest first, so an execution only ever moves down,
by one place for every execution created after it. The model keeps one global count,
`arrivals`: how many executions have arrived at the top since the model began. Each
execution seen on a page is *anchored*: its index in the list then, and `arrivals`
then. Its index now is its anchored index plus the arrivals since; its page follows.

Arrivals between two reads are not seen; they are estimated from the arrival rate,
and every page read corrects the count: the anchored executions a page shows say how
far the list really moved (the median of what they say, so one deleted execution does
not throw the others off). A page read re-anchors every tracked execution it shows; an
anchored execution the page should have shown but did not has moved in a way the
model cannot explain (a deletion above it, or an estimate off by more than a page) and
loses its anchor: it is read by id until a page shows it again.

Each anchor's *shift* (`place - arrivals` then) stays the same while the model
explains the list; the anchors are also kept ordered by shift (`by_shift`), so a read
checks only the anchors near its page for ones it should have shown, not all of them.

Invariants: `arrivals` never decreases; positions are never negative; only the
executions passed as `keep` stay anchored, so memory is bounded by what is tracked;
`by_shift` holds exactly `(place - arrivals, id)` of every anchor, sorted.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

# How quickly the arrival rate follows what top reads count (weight of the newest).
_RATE_SMOOTHING = 0.3
_MIN_RATE_SPAN_S = 0.5
# More changes to the shift order than this in one read: it is sorted afresh.
_RESORT_CHANGES = 256

ShiftOrder = tuple[tuple[float, str], ...]


class Anchor(NamedTuple):
    """Where an execution was seen: its 0-based place in the list, and `arrivals` then."""

    place: int
    arrivals: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ListPositions:
    page_size: int
    arrivals: float = 0.0
    # When `arrivals` was last measured (a page read), and the arrival rate per second.
    measured_at_s: float | None = None
    arrival_rate_per_s: float = 0.0
    anchors: Mapping[str, Anchor] = field(default_factory=lambda: MappingProxyType({}))
    # `(place - arrivals, id)` of every anchor, sorted; None (when built with `anchors`
    # only): computed from them.
    by_shift: ShiftOrder | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.by_shift is None:
            object.__setattr__(self, "by_shift", _sorted_shifts(self.anchors))

    def _order(self) -> ShiftOrder:
        assert self.by_shift is not None  # set by __post_init__
        return self.by_shift

    def arrivals_at(self, now_s: float) -> float:
        """The arrivals now: the last measured count plus the expected unseen ones."""
        if self.measured_at_s is None:
            return self.arrivals
        return self.arrivals + self.arrival_rate_per_s * max(0.0, now_s - self.measured_at_s)

    def page_of(self, execution_id: str, *, now_s: float) -> int | None:
        """The `pageNumber` (from 1) an anchored execution is expected on now, or None."""
        anchor = self.anchors.get(execution_id)
        if anchor is None:
            return None
        return _page(anchor, arrivals=self.arrivals_at(now_s), page_size=self.page_size)

    def pages(self, ids: Iterable[str], *, now_s: float) -> dict[str, int]:
        """The expected page now of each of `ids` that is anchored."""
        arrivals = self.arrivals_at(now_s)
        anchors = self.anchors
        size = self.page_size
        # `_page`, inlined: this runs for every tracked execution on every plan.
        return {
            execution_id: max(0, round(anchor[0] + arrivals - anchor[1])) // size + 1
            for execution_id in ids
            if (anchor := anchors.get(execution_id)) is not None
        }

    def held_page(self, anchor: Anchor, *, arrivals: float) -> tuple[int, float, float]:
        """The page of `anchor` at `arrivals` (as `pages` computes it), and the range of
        arrivals `[low, high)` it stays on (a hair narrower): a caller may keep it while
        `arrivals_at` stays in that range and the anchor stays the same."""
        shift = anchor[0] - anchor[1]
        page = max(0, round(anchor[0] + arrivals - anchor[1])) // self.page_size + 1
        first = (page - 1) * self.page_size
        low = -math.inf if page == 1 else first - 0.5 - shift + 1e-6
        high = first + self.page_size - 0.5 - shift - 1e-6
        return page, low, high

    def after_page(
        self,
        page: int,
        ids: Sequence[str],
        *,
        now_s: float,
        keep: Collection[str],
        also_keep: AbstractSet[str] = frozenset(),
    ) -> ListPositions:
        """A read of `page` at `now_s` showed `ids` in this order; anchor those in `keep`
        (the tracked executions) or `also_keep` (a few more: a caller passes its tracked
        set as it is, a dict's keys say, instead of building their union) and correct the
        arrivals count from those already anchored."""
        offset = (page - 1) * self.page_size
        implied = [
            anchor.arrivals + (offset + i - anchor.place)
            for i, execution_id in enumerate(ids)
            if (anchor := self.anchors.get(execution_id)) is not None
        ]
        measured_at_s: float | None = now_s
        if implied:
            arrivals = max(self.arrivals, statistics.median(implied))
            rate = self._rate_after(arrivals=arrivals, now_s=now_s)
            anchored_at = arrivals
        else:
            # Nothing on the page was anchored: the count stays an estimate.
            rate = self.arrival_rate_per_s
            arrivals = self.arrivals
            anchored_at = self.arrivals_at(now_s)
            if self.measured_at_s is not None:
                measured_at_s = self.measured_at_s
        shown = set(ids)
        # An anchored execution that, with the corrected count, belongs on this page but
        # is not on it has moved in a way the model cannot explain. Only anchors whose
        # shift is near this page's can belong on it: a bisect of the shift order finds
        # them; the exact test (as `_page` rounds) sorts them out.
        first, size = offset, self.page_size  # this page's places: [first, first + size)
        order = self._order()
        low = -math.inf if first == 0 else first - anchored_at - 2.0
        high = first + size - anchored_at + 2.0
        near = order[bisect.bisect_left(order, (low,)) : bisect.bisect_left(order, (high,))]
        anchored = self.anchors
        lost = {
            execution_id
            for _, execution_id in near
            if execution_id not in shown
            and first
            <= max(0, round((anchor := anchored[execution_id])[0] + anchored_at - anchor[1]))
            < first + size
        }
        kept: AbstractSet[str] = keep if isinstance(keep, AbstractSet) else set(keep)
        anchors = _copy(anchored)  # the few changes follow
        touched = (anchored.keys() - kept - also_keep) | lost
        for execution_id in touched:
            del anchors[execution_id]
        for i, execution_id in enumerate(ids):
            if execution_id in kept or execution_id in also_keep:
                anchors[execution_id] = Anchor(place=offset + i, arrivals=anchored_at)
                touched.add(execution_id)
        moved: list[tuple[float, str]] = []  # old entries of the shift order
        added: list[tuple[float, str]] = []  # new ones
        for execution_id in touched:
            was, now = anchored.get(execution_id), anchors.get(execution_id)
            was_shift = None if was is None else was[0] - was[1]
            now_shift = None if now is None else now[0] - now[1]
            if was_shift != now_shift:
                if was_shift is not None:
                    moved.append((was_shift, execution_id))
                if now_shift is not None:
                    added.append((now_shift, execution_id))
        by_shift = _reordered(order, remove=moved, insert=added, anchors=anchors)
        return replace(
            self,
            arrivals=arrivals,
            measured_at_s=measured_at_s,
            arrival_rate_per_s=rate,
            anchors=MappingProxyType(anchors),
            by_shift=by_shift,
        )

    def forget(self, gone: Collection[str]) -> ListPositions:
        """Drop the anchors of executions no longer tracked."""
        if not any(execution_id in self.anchors for execution_id in gone):
            return self
        anchors = _copy(self.anchors)
        removed: list[tuple[float, str]] = []
        for execution_id in set(gone):
            if (anchor := anchors.pop(execution_id, None)) is not None:
                removed.append((anchor.place - anchor.arrivals, execution_id))
        by_shift = _reordered(self._order(), remove=removed, insert=[], anchors=anchors)
        return replace(self, anchors=MappingProxyType(anchors), by_shift=by_shift)

    def _rate_after(self, *, arrivals: float, now_s: float) -> float:
        # Measurements close together say little about the rate: they leave it be.
        if self.measured_at_s is None:
            return self.arrival_rate_per_s
        elapsed_s = now_s - self.measured_at_s
        if elapsed_s < _MIN_RATE_SPAN_S:
            return self.arrival_rate_per_s
        observed = (arrivals - self.arrivals) / elapsed_s
        return (1 - _RATE_SMOOTHING) * self.arrival_rate_per_s + _RATE_SMOOTHING * observed


def _page(anchor: Anchor, *, arrivals: float, page_size: int) -> int:
    index = max(0, round(anchor.place + arrivals - anchor.arrivals))
    return index // page_size + 1


def _copy(anchors: Mapping[str, Anchor]) -> dict[str, Anchor]:
    """A copy at C speed: `dict()` of a mapping proxy goes key by key, `copy()` does not."""
    if isinstance(anchors, MappingProxyType | dict):
        copied: dict[str, Anchor] = anchors.copy()
        return copied
    return dict(anchors)


def _sorted_shifts(anchors: Mapping[str, Anchor]) -> ShiftOrder:
    return tuple(sorted((anchor[0] - anchor[1], key) for key, anchor in anchors.items()))


def _reordered(
    order: ShiftOrder,
    *,
    remove: Sequence[tuple[float, str]],
    insert: Sequence[tuple[float, str]],
    anchors: Mapping[str, Anchor],
) -> ShiftOrder:
    """`order` without `remove` and with `insert` (each entry at most once), still
    sorted: a read changes a few entries of a thousand, each found by bisection."""
    if not remove and not insert:
        return order
    if len(remove) + len(insert) > _RESORT_CHANGES:
        return _sorted_shifts(anchors)
    entries = list(order)
    for entry in remove:
        index = bisect.bisect_left(entries, entry)
        if index < len(entries) and entries[index] == entry:
            del entries[index]
    for entry in insert:
        bisect.insort(entries, entry)
    return tuple(entries)
