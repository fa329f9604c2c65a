"""Which read an adaptive source makes next (domain.cadence): table tests for the maths,
and properties of a planner driven through random workloads with its budget."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.budget import RequestBudget
from relay.domain.cadence import (
    IDLE_FRACTION,
    CadenceInputs,
    EndRates,
    Read,
    RunningView,
    places_of,
    plan_next,
    share_rates,
)
from relay.domain.lifetimes import Lifetimes


def _inputs(**overrides: object) -> CadenceInputs:
    values: dict[str, object] = {
        "now_s": 100.0,
        "running": [],
        "last_top_read_s": 99.0,
        "arrival_rate_per_s": 0.0,
        "allowed_rate_per_s": 1.0,
        "poll_interval_s": 15.0,
        "lifetimes": Lifetimes(),
    }
    values.update(overrides)
    return CadenceInputs(**values)  # type: ignore[arg-type]


def _view(execution_id: str, page: int | None, *, last_read_s: float = 99.0, age_s: float = 10.0):
    return RunningView(
        id=execution_id, responder_id="r", age_s=age_s, last_read_s=last_read_s, page=page
    )


@pytest.mark.parametrize(
    ("change_rates", "total", "floor", "expected"),
    [
        # Proportional to the square root of the change rate.
        ([1.0, 4.0], 3.0, 0.0, [1.0, 2.0]),
        ([1.0, 1.0, 1.0, 1.0], 2.0, 0.1, [0.5, 0.5, 0.5, 0.5]),
        # A place below the floor is pinned there; the rest share what is left.
        ([0.0001, 1.0, 4.0], 1.0, 0.1, [0.1, 0.3, 0.6]),
    ],
)
def test_rates_follow_the_square_root_rule_above_the_floor(
    change_rates: list[float], total: float, floor: float, expected: list[float]
) -> None:
    rates, over = share_rates(change_rates, total_per_s=total, min_per_s=floor)
    assert rates == pytest.approx(expected, rel=1e-3)
    assert not over
    assert sum(rates) == pytest.approx(total)


def test_when_the_floor_does_not_fit_the_top_keeps_it_and_the_rest_share() -> None:
    rates, over = share_rates([1.0, 1.0, 4.0, 9.0], total_per_s=1.1, min_per_s=0.5)
    assert over
    assert rates == pytest.approx([0.5, 0.1, 0.2, 0.3])


def test_executions_are_grouped_into_top_pages_and_ids() -> None:
    running = [
        _view("top-a", 1),
        _view("p3-a", 3),
        _view("p3-b", 3),
        _view("p5-alone", 5),
        _view("lost", None),
    ]
    places = places_of(_inputs(running=running))
    reads = [place.read for place in places]
    assert reads == [
        Read("top"),
        Read("page", page=3),
        Read("id", execution_id="lost"),
        Read("id", execution_id="p5-alone"),
    ]
    assert places[0].members == ("top-a",)
    assert places[1].members == ("p3-a", "p3-b")
    # Every running execution is in exactly one place.
    members = [m for place in places for m in place.members]
    assert sorted(members) == sorted(v.id for v in running)


def test_an_idle_workspace_reads_the_top_at_a_fifth_of_the_budget() -> None:
    plan = plan_next(_inputs(last_top_read_s=99.0))
    assert plan.read is None
    assert plan.spend_rate_per_s == pytest.approx(IDLE_FRACTION)
    assert plan.due_at_s == pytest.approx(99.0 + 1 / IDLE_FRACTION)
    assert plan_next(_inputs(now_s=104.0)).read == Read("top")


def test_running_executions_get_the_whole_budget() -> None:
    plan = plan_next(_inputs(running=[_view("a", 1)], last_top_read_s=98.0))
    assert plan.spend_rate_per_s == pytest.approx(1.0)
    assert plan.read == Read("top")


def test_a_place_about_to_miss_its_bound_goes_before_a_busier_one() -> None:
    running = [
        _view("young-1", 2, last_read_s=99.0, age_s=1.0),
        _view("young-2", 2, last_read_s=99.0, age_s=1.0),
        _view("old", 9, last_read_s=85.5, age_s=86400.0),
    ]
    plan = plan_next(_inputs(running=running, last_top_read_s=99.5))
    assert plan.read == Read("id", execution_id="old")
    assert plan.staleness_s == pytest.approx(14.5)


def test_a_page_is_paced_by_its_members_reads_weighted_by_how_soon_each_may_end() -> None:
    # Page 3 was just read; one old execution slid onto it from page 2, unread for 10 s.
    running = [
        *(_view(f"p3-{i}", 3, last_read_s=99.9, age_s=5.0) for i in range(5)),
        _view("slid-in", 3, last_read_s=90.0, age_s=86400.0),
        *(_view(f"p4-{i}", 4, last_read_s=95.0, age_s=5.0) for i in range(5)),
    ]
    places = places_of(_inputs(running=running))
    page3 = next(p for p in places if p.read == Read("page", page=3))
    # The bound is kept by its stalest member; its pace by the likely endings.
    assert page3.last_read_s == 90.0
    assert 99.0 < page3.read_on_average_s < 99.9
    plan = plan_next(_inputs(running=running, last_top_read_s=99.9))
    assert plan.read == Read("page", page=4), "the page whose likely endings waited longest"


def test_while_anything_runs_every_slot_is_spent() -> None:
    # Everything was just read: nothing is due, yet the next slot is used.
    running = [_view("a", 2, last_read_s=99.99), _view("b", 2, last_read_s=99.99)]
    plan = plan_next(_inputs(running=running, last_top_read_s=99.99))
    assert plan.read is not None
    assert plan.due_at_s == pytest.approx(100.0)


def test_the_top_is_worth_the_endings_among_arrivals_not_the_arrivals() -> None:
    # Nothing ever ended young: arrivals are all still running when first read.
    long_lived = Lifetimes()
    for _ in range(200):
        long_lived = long_lived.ended("r", 3600.0)
    slow = places_of(_inputs(arrival_rate_per_s=5.0, lifetimes=long_lived))[0]
    quick = Lifetimes()
    for _ in range(200):
        quick = quick.ended("r", 1.0)
    fast = places_of(_inputs(arrival_rate_per_s=5.0, lifetimes=quick))[0]
    assert slow.change_rate_per_s < 0.5, "most arrivals are found running: little to find"
    assert fast.change_rate_per_s == pytest.approx(5.0, rel=0.05), "each arrival ends at once"


def test_the_sweep_takes_the_slots_no_place_needs() -> None:
    plan = plan_next(_inputs(sweep_page=7, last_top_read_s=99.9))
    assert plan.read == Read("sweep", page=7)


def test_over_budget_is_reported_when_the_bound_cannot_be_kept() -> None:
    running = [_view(f"e{i}", None) for i in range(30)]
    plan = plan_next(_inputs(running=running, allowed_rate_per_s=1.0, poll_interval_s=15.0))
    assert plan.over_budget


# A workload for the properties: executions arrive at the top, run for a while, end;
# the planner is asked what to read and the budget when it may. The model knows the
# true pages, as the engine does after each read.
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    budget_per_minute=st.sampled_from([30, 60, 120, 300]),
    poll_interval_s=st.sampled_from([10.0, 15.0, 30.0, 60.0]),
    arrivals_per_s=st.floats(min_value=0.0, max_value=2.0),
    mean_duration_s=st.floats(min_value=1.0, max_value=120.0),
    throttle_at=st.one_of(st.none(), st.floats(min_value=0.0, max_value=200.0)),
)
def test_the_bound_and_the_budget_hold_through_any_workload(
    seed: int,
    budget_per_minute: int,
    poll_interval_s: float,
    arrivals_per_s: float,
    mean_duration_s: float,
    throttle_at: float | None,
) -> None:
    _simulate(
        seed=seed,
        budget_per_minute=budget_per_minute,
        poll_interval_s=poll_interval_s,
        arrivals_per_s=arrivals_per_s,
        mean_duration_s=mean_duration_s,
        throttle_at=throttle_at,
    )


def test_the_property_checks_bounds_on_a_busy_workload() -> None:
    # The property above asserts a bound only when the budget allows it; make sure a
    # busy workload the budget can carry has it checked many times.
    checked = _simulate(
        seed=7,
        budget_per_minute=120,
        poll_interval_s=15.0,
        arrivals_per_s=0.5,
        mean_duration_s=60.0,
        throttle_at=None,
    )
    assert checked > 100


def _simulate(
    *,
    seed: int,
    budget_per_minute: int,
    poll_interval_s: float,
    arrivals_per_s: float,
    mean_duration_s: float,
    throttle_at: float | None,
) -> int:
    """Run the planner and the budget through a random workload; assert the properties
    and return how many read gaps were checked against the bound."""
    rng = random.Random(seed)
    page_size = 20
    budget = RequestBudget.per_minute(budget_per_minute)
    lifetimes = Lifetimes()
    listed: list[str] = []  # newest first
    ends_at: dict[str, float] = {}
    started_at: dict[str, float] = {}
    last_read: dict[str, float] = {}
    tracked: set[str] = set()
    last_top_s = 0.0
    top_reads: list[float] = [0.0]
    sent: list[float] = []
    now_s = 0.0
    next_arrival_s = rng.expovariate(arrivals_per_s) if arrivals_per_s else math.inf
    throttled = False
    checked_gaps = 0
    tight_at_s = -math.inf
    while now_s < 240.0:
        while next_arrival_s <= now_s:
            new_id = f"x{len(listed)}"
            listed.insert(0, new_id)
            started_at[new_id] = next_arrival_s
            ends_at[new_id] = next_arrival_s + rng.expovariate(1 / mean_duration_s)
            next_arrival_s += rng.expovariate(arrivals_per_s)
        running = [e for e in tracked if ends_at[e] > now_s]
        index = {e: i for i, e in enumerate(listed)}
        views = [
            RunningView(
                id=e,
                responder_id="r",
                age_s=now_s - started_at[e],
                last_read_s=last_read[e],
                page=index[e] // page_size + 1,
            )
            for e in running
        ]
        plan = plan_next(
            CadenceInputs(
                now_s=now_s,
                running=views,
                last_top_read_s=last_top_s,
                arrival_rate_per_s=arrivals_per_s,
                allowed_rate_per_s=budget.rate_per_s,
                poll_interval_s=poll_interval_s,
                lifetimes=lifetimes,
            )
        )
        # "Whenever the budget allows it": the bounds need at most half of what may be
        # spent, and did so for the whole gap (reads come in whole slots, and executions
        # read together at the top spread over several pages as the list moves, each
        # then needing a read of its own).
        floor_demand = len(plan.places) / poll_interval_s
        if floor_demand > 0.5 * plan.spend_rate_per_s or budget.throttled or throttled:
            tight_at_s = now_s
        if plan.read is None:
            now_s = max(plan.due_at_s, now_s + 1e-3)
            continue
        slot_s = budget.next_slot_s(now_s)
        if slot_s > now_s:
            now_s = slot_s
            continue
        budget = budget.spent(now_s)
        sent.append(now_s)
        if throttle_at is not None and not throttled and now_s >= throttle_at:
            throttled = True
            budget = budget.rate_limited(now_s=now_s, retry_after_s=5.0)
        else:
            budget = budget.succeeded()
        if plan.read.kind == "top":
            shown = listed[:page_size]
            last_top_s = now_s
            top_reads.append(now_s)
        elif plan.read.kind == "page":
            start = (plan.read.page - 1) * page_size
            shown = listed[start : start + page_size]
        else:
            shown = [plan.read.execution_id] if plan.read.execution_id else []
        for execution_id in shown:
            if execution_id in tracked and ends_at[execution_id] > now_s - 1e-9:
                gap_s = now_s - last_read[execution_id]
                if last_read[execution_id] > tight_at_s:
                    checked_gaps += 1
                    assert gap_s <= poll_interval_s + 1e-6
            if ends_at[execution_id] <= now_s:
                if execution_id in tracked:
                    tracked.discard(execution_id)
                    lifetimes = lifetimes.ended(
                        "r", ends_at[execution_id] - started_at[execution_id]
                    )
            else:
                tracked.add(execution_id)
                last_read[execution_id] = now_s
    # The budget: no rolling minute over the limit.
    for i, start in enumerate(sent):
        assert len([t for t in sent[i:] if t < start + 60.0 - 1e-9]) <= budget.limit
    # The top: read at least every poll interval, unless throttled.
    if throttle_at is None:
        gaps = [b - a for a, b in itertools.pairwise(top_reads)]
        assert max(gaps, default=0.0) <= poll_interval_s + 1e-6
    return checked_gaps


def test_end_rates_are_those_of_the_lifetimes_to_within_their_age_buckets() -> None:
    learned = Lifetimes()
    for duration_s in (5.0, 30.0, 90.0, 600.0, 3600.0) * 20:
        learned = learned.ended("r", duration_s)
    for age_s in (0.0, 7.0, 45.0, 500.0, 7200.0):
        place = places_of(_inputs(running=[_view("x", None, age_s=age_s)], lifetimes=learned))[1]
        exact = learned.end_rate_per_s("r", age_s=age_s, horizon_s=15.0)
        assert place.change_rate_per_s == pytest.approx(exact, rel=0.1)


def test_a_short_poll_interval_leaves_the_sweep_its_slots() -> None:
    # 10 reads a second and a 300 ms bound: the top's margin must not take every slot.
    plan = plan_next(
        _inputs(
            now_s=100.0,
            last_top_read_s=99.85,
            allowed_rate_per_s=10.0,
            poll_interval_s=0.3,
            sweep_page=3,
        )
    )
    assert plan.read == Read("sweep", page=3)


def test_end_rates_handed_in_are_reused_and_a_new_bound_computes_them_afresh() -> None:
    quick = Lifetimes()
    for _ in range(50):
        quick = quick.ended("r", 20.0)  # at 10 s old, "r" ends within the bound
    running = [_view("a", 3), _view("b", 3)]
    fresh = places_of(_inputs(running=running, lifetimes=quick))
    # Rates of the prior alone, handed in for the same bound: the plan uses them.
    stale = EndRates(Lifetimes(), horizon_s=15.0)
    reused = places_of(_inputs(running=running, lifetimes=quick, end_rates=stale))
    page = {p.read: p for p in fresh}[Read("page", page=3)]
    old_page = {p.read: p for p in reused}[Read("page", page=3)]
    assert old_page.change_rate_per_s < page.change_rate_per_s
    # Handed in for another bound: computed again, as if none had been given.
    other = EndRates(Lifetimes(), horizon_s=60.0)
    recomputed = places_of(_inputs(running=running, lifetimes=quick, end_rates=other))
    assert recomputed == fresh


@settings(max_examples=200, deadline=None)
@given(
    views=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
            st.floats(min_value=0.0, max_value=100.0),
        ),
        max_size=30,
    )
)
def test_staleness_is_the_longest_any_tracked_execution_went_unread(
    views: list[tuple[int | None, float]],
) -> None:
    # Taken from the places' oldest reads: the same as a look at every execution.
    running = [_view(f"e{i}", page, last_read_s=read_s) for i, (page, read_s) in enumerate(views)]
    plan = plan_next(_inputs(running=running))
    oldest_s = min((view.last_read_s for view in running), default=100.0)
    assert plan.staleness_s == max(0.0, 100.0 - oldest_s)
    assert sorted(m for place in plan.places for m in place.members) == sorted(
        view.id for view in running
    )
