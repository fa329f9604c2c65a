"""Which read an adaptive source makes next, within its request budget.

Pure: times are monotonic seconds passed in, ages are seconds; nothing here reads a
clock or the network.

A *place* is something one request reads: the top of the list (page 1, where new and
short executions are), a deeper page that holds two or more tracked running
executions, or one execution by id (one alone on its page, or one whose page is not
known). Each place changes at a rate: the top at the arrival rate of new executions
plus the end rates of the executions on it, a page or an id at the sum of the end
rates of its executions (`lifetimes.Lifetimes`).

Rates follow the square-root rule of refresh scheduling under a budget (Cho and
Garcia-Molina, 2003): a place is read at a rate proportional to the square root of the
rate at which it changes, and no place less often than once per `poll_interval_s`
(the worst-case bound). The rates add up to the rate the source may spend: its
budget while anything runs, a fifth of it once nothing does (an idle workspace costs
little, and the top is still read every few seconds). When the bound alone needs more
than that, every place gets its square-root share and the plan says `over_budget`.

The next read is the place most overdue relative to its rate. While anything runs,
every slot is spent: when no place is due yet, the next slot goes to the one with the
most endings likely waiting. When idle, the plan says when the top falls due, and
nothing is spent before that. A sweep
(first start, or tracked executions whose page is not known after a restart) reads
pages down the list at half the spendable rate, kept for it however busy the places
are, and in any slot left over.

Invariants: every tracked running execution belongs to exactly one place; the top is
always a place (the first) and keeps its once-per-`poll_interval_s` floor even when the
others cannot; rates are positive; with nothing running, a plan never asks for a read
that is not yet due.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from relay.domain.lifetimes import POOLED, Lifetimes

ReadKind = Literal["top", "page", "id", "sweep"]
IDLE_FRACTION = 0.2
SWEEP_FRACTION = 0.5
_MARGIN_SLOTS = 2
_TOP_LOOKAHEAD_SLOTS = 4


class RunningView(NamedTuple):
    """One tracked running execution as the planner sees it (a tuple: a plan builds one
    for every tracked execution on every read)."""

    id: str
    responder_id: str
    age_s: float
    last_read_s: float
    page: int | None  # the page it is expected on now; None if not known
    # Its end rate, when the caller keeps it from an earlier plan (`EndRates.held`, of
    # the plan's `end_rates`); None: from `lifetimes`.
    end_rate_per_s: float | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """One request to make: the top scan, a page, an execution by id, or a sweep page."""

    kind: ReadKind
    page: int = 1
    execution_id: str | None = None


@dataclass(frozen=True, slots=True)
class Place:
    """What one read covers: the executions on it, how fast it changes, when it was
    read last (its stalest member's last read, which the `poll_interval` bound is kept
    by) and when on average (its members' last reads weighted by how soon each may
    end, which its rate is kept by: a stale member sliding in from the page above does
    not make a page just read look unread)."""

    read: Read
    change_rate_per_s: float
    last_read_s: float
    members: tuple[str, ...] = ()
    mean_read_s: float | None = None  # None: last_read_s
    # The top's: its members' oldest last read (None: no members); the others': None,
    # their `last_read_s` is that already.
    members_read_s: float | None = None

    @property
    def read_on_average_s(self) -> float:
        return self.last_read_s if self.mean_read_s is None else self.mean_read_s


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer: read `read` now, or nothing before `due_at_s`."""

    read: Read | None
    due_at_s: float
    places: tuple[Place, ...]
    spend_rate_per_s: float
    allowed_rate_per_s: float
    over_budget: bool
    staleness_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CadenceInputs:
    now_s: float
    running: Sequence[RunningView]
    last_top_read_s: float
    arrival_rate_per_s: float
    allowed_rate_per_s: float
    poll_interval_s: float
    lifetimes: Lifetimes
    # End rates computed for an earlier plan (of these or slightly older lifetimes), to
    # reuse: None computes them afresh.
    end_rates: EndRates | None = None
    sweep_page: int | None = None
    last_sweep_s: float = float("-inf")


def places_of(inputs: CadenceInputs) -> list[Place]:
    """Group the tracked running executions into the places one request each reads."""
    horizon_s = inputs.poll_interval_s
    end_rate = inputs.end_rates
    if end_rate is None or end_rate.horizon_s != horizon_s:
        end_rate = EndRates(inputs.lifetimes, horizon_s=horizon_s)
    # Something new may arrive at any time: the top is worth at least one change per
    # bound, even when nothing has arrived for a while. What it finds there is worth as
    # much as the endings among the arrivals: those that end before the next read (a
    # new execution that is still running is found just as well by a later read). The
    # next read of the top is a few slots away, not a whole bound.
    until_next_s = min(horizon_s, _TOP_LOOKAHEAD_SLOTS / max(inputs.allowed_rate_per_s, 1e-9))
    ended_young = inputs.lifetimes.end_rate_per_s(POOLED, age_s=0.0, horizon_s=until_next_s)
    top_rate = max(
        1.0 / inputs.poll_interval_s,
        inputs.arrival_rate_per_s * min(1.0, ended_young * until_next_s),
    )
    top_members: list[str] = []
    top_oldest_s = math.inf
    # Per page below the top, in one pass over the views (this runs for every tracked
    # execution on every read): its first view, the sums of its end rates and of the
    # rate-weighted last reads, its oldest last read, its members.
    by_page: dict[int, _PageSums] = {}
    singles: list[RunningView] = []
    for view in inputs.running:
        page = view.page
        view_rate = view.end_rate_per_s
        if view_rate is None:
            view_rate = end_rate(view)
        if page == 1:
            top_rate += view_rate
            top_members.append(view.id)
            if view.last_read_s < top_oldest_s:
                top_oldest_s = view.last_read_s
        elif page is None:
            singles.append(view)
        elif (sums := by_page.get(page)) is None:
            by_page[page] = [
                view,
                view_rate,
                view_rate * view.last_read_s,
                view.last_read_s,
                [view.id],
            ]
        else:
            sums[1] += view_rate
            sums[2] += view_rate * view.last_read_s
            if view.last_read_s < sums[3]:
                sums[3] = view.last_read_s
            sums[4].append(view.id)
    places = [
        Place(
            Read("top"),
            change_rate_per_s=top_rate,
            last_read_s=inputs.last_top_read_s,
            members=tuple(top_members),
            members_read_s=top_oldest_s if top_members else None,
        )
    ]
    for page in sorted(by_page):
        first_view, rate, weighted_s, oldest_s, members = by_page[page]
        if len(members) == 1:
            singles.append(first_view)
            continue
        places.append(
            Place(
                Read("page", page=page),
                change_rate_per_s=rate,
                last_read_s=oldest_s,
                members=tuple(members),
                mean_read_s=weighted_s / rate,
            )
        )
    singles.sort(key=_view_id)
    for view in singles:
        places.append(
            Place(
                Read("id", execution_id=view.id),
                change_rate_per_s=end_rate(view)
                if view.end_rate_per_s is None
                else view.end_rate_per_s,
                last_read_s=view.last_read_s,
                members=(view.id,),
            )
        )
    return places


# A page's first view, the sums of its end rates and of rate-weighted last reads, its
# oldest last read, its members (a list: updated in place on the hot path).
_PageSums = list[Any]


def _view_id(view: RunningView) -> str:
    return view.id


class EndRates:
    """`Lifetimes.end_rate_per_s` for many executions at once, computed once per
    responder and age to within 5% (the estimate moves little more than that across 5%
    of an age, and a thousand running executions share a hundred or so such ages).
    Kept from plan to plan while `lifetimes` stays the same, or nearly: one more ended
    execution moves the estimates by a fraction of a percent, and computing them is
    most of a plan's cost."""

    _STEPS_PER_E = 20.0  # age buckets: 20 per factor e, about 5% apart

    def __init__(self, lifetimes: Lifetimes, *, horizon_s: float) -> None:
        self.lifetimes = lifetimes
        self.horizon_s = horizon_s
        # Responder -> age bucket -> rate.
        self._known: dict[str, dict[int, float]] = {}

    def __call__(self, view: RunningView) -> float:
        return self.held(view.responder_id, age_s=view.age_s)[0]

    def held(self, responder_id: str, *, age_s: float) -> tuple[float, float]:
        """The end rate at `age_s`, and the age below which it stays the same (the end of
        its age bucket, a hair early): a caller may keep it until then."""
        bucket = round(math.log1p(age_s) * self._STEPS_PER_E)
        by_age = self._known.get(responder_id)
        if by_age is None:
            by_age = self._known[responder_id] = {}
        rate = by_age.get(bucket)
        if rate is None:
            rate = self.lifetimes.end_rate_per_s(
                responder_id, age_s=math.expm1(bucket / self._STEPS_PER_E), horizon_s=self.horizon_s
            )
            by_age[bucket] = rate
        until_age_s = math.expm1((bucket + 0.5) / self._STEPS_PER_E) * (1 - 1e-9) - 1e-9
        return rate, until_age_s


def spend_rate_per_s(inputs: CadenceInputs) -> float:
    """What the source may spend now: its allowed rate while anything runs or arrives,
    a fifth of it when idle."""
    busy = bool(inputs.running) or inputs.sweep_page is not None
    return inputs.allowed_rate_per_s * (1.0 if busy else IDLE_FRACTION)


def share_rates(
    change_rates: Sequence[float], *, total_per_s: float, min_per_s: float
) -> tuple[list[float], bool]:
    """Square-root rule with a floor: rates `max(min_per_s, k * sqrt(change rate))`
    adding up to `total_per_s`. The first rate is the top's: when the floor does not fit
    for every place, the top keeps its floor and the others share the rest in
    proportion to the square roots (and the second value returned is True)."""
    count = len(change_rates)
    if count == 0:
        return [], False
    # A place that never changes still gets a share: the floor of the floor.
    roots = [math.sqrt(max(rate, 1e-9)) for rate in change_rates]
    if min_per_s * count > total_per_s:
        top = min(min_per_s, total_per_s / 2) if count > 1 else total_per_s
        rest_root = sum(roots[1:])
        rest = [(total_per_s - top) * root / rest_root for root in roots[1:]]
        return [top, *rest], True
    order = sorted(range(count), key=lambda i: roots[i])
    remaining_root = sum(roots)
    pinned = 0
    k = 0.0
    for position, index in enumerate(order):
        k = (total_per_s - min_per_s * pinned) / remaining_root
        if k * roots[index] >= min_per_s:
            break
        pinned = position + 1
        remaining_root -= roots[index]
    rates = [max(min_per_s, k * root) for root in roots]
    return rates, False


def plan_next(inputs: CadenceInputs) -> Plan:
    """The next read to make, or when the next one falls due.

    When a `poll_interval_s` bound would be missed unless reads start now, the place
    with the earliest deadline goes (earliest deadline first keeps every bound whenever
    the bounds alone fit the budget with some room); otherwise the place most overdue for
    its rate; otherwise the sweep.
    """
    now_s = inputs.now_s
    places = places_of(inputs)
    spend = spend_rate_per_s(inputs)
    for_places = spend * (1.0 - SWEEP_FRACTION) if inputs.sweep_page is not None else spend
    rates, over_budget = share_rates(
        [place.change_rate_per_s for place in places],
        total_per_s=for_places,
        min_per_s=1.0 / inputs.poll_interval_s,
    )
    slot_s = 1.0 / spend
    deadlines = [place.last_read_s + inputs.poll_interval_s for place in places]
    due = [place.read_on_average_s + 1.0 / rate for place, rate in zip(places, rates, strict=True)]
    read: Read | None = None
    # Deadlines are met one slot at a time: the k-th earliest must start k slots early,
    # plus two of margin (the budget's next slot may be a slot later than asked).
    by_deadline = sorted(range(len(places)), key=lambda i: deadlines[i])
    lead_s = [(rank + _MARGIN_SLOTS) * slot_s for rank in range(len(places))]
    urgent = {
        index for rank, index in enumerate(by_deadline) if deadlines[index] - lead_s[rank] <= now_s
    }
    # Two slots of margin, but never so much that the top takes every slot of a short
    # poll_interval and starves the sweep and the pages.
    top_due_at_s = deadlines[0] - min(_MARGIN_SLOTS * slot_s, inputs.poll_interval_s / 3)
    top_due = top_due_at_s <= now_s
    sweep_due_at_s = math.inf
    if inputs.sweep_page is not None:
        sweep_due_at_s = inputs.last_sweep_s + 1.0 / (spend * SWEEP_FRACTION)
    if not top_due and sweep_due_at_s <= now_s:
        # The sweep's share is kept for it, however busy the places are.
        read = Read("sweep", page=inputs.sweep_page or 1)
    elif urgent or top_due:
        # Earliest deadline first, except that the top never misses its bound: it is
        # where new executions, and most failures, appear.
        first = 0 if top_due else by_deadline[0]
        read = places[first].read
    else:
        ready = [i for i, due_s in enumerate(due) if due_s <= now_s]
        if not ready and inputs.running and inputs.sweep_page is None:
            # While anything runs the budget is spent, not saved: the next slot goes to
            # the place with the most endings likely waiting, due or not.
            ready = list(range(len(places)))
        if ready:
            best = max(ready, key=lambda i: (now_s - places[i].read_on_average_s) * rates[i])
            read = places[best].read
        elif inputs.sweep_page is not None:
            read = Read("sweep", page=inputs.sweep_page)
    due_at_s = now_s
    if read is None:
        due_at_s = min(
            min(due),
            sweep_due_at_s,
            top_due_at_s,
            min(deadlines[i] - lead_s[rank] for rank, i in enumerate(by_deadline)),
        )
    # Every tracked execution is a member of one place: the oldest read among them.
    oldest_read_s = min(
        [place.last_read_s for place in places[1:]]
        + ([] if places[0].members_read_s is None else [places[0].members_read_s]),
        default=now_s,
    )
    staleness_s = now_s - oldest_read_s
    return Plan(
        read=read,
        due_at_s=max(now_s, due_at_s),
        places=tuple(places),
        spend_rate_per_s=spend,
        allowed_rate_per_s=inputs.allowed_rate_per_s,
        over_budget=over_budget,
        staleness_s=max(0.0, staleness_s),
    )
