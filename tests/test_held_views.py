"""Views the cadence keeps from read to read (pipeline.views, with the limits
`ListPositions.held_page` and `EndRates.held` give): a kept view is the one a plan
computed afresh would get, whatever reads, arrivals and time do between plans."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.cadence import EndRates
from relay.domain.lifetimes import Lifetimes
from relay.domain.positions import Anchor, ListPositions
from relay.domain.state import TrackedExecution
from relay.pipeline.views import HeldViews

_AT = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    place=st.integers(min_value=0, max_value=5_000),
    anchored_at=st.floats(min_value=0, max_value=1_000, allow_nan=False),
    arrivals=st.floats(min_value=0, max_value=2_000, allow_nan=False),
    later=st.floats(min_value=-300, max_value=300, allow_nan=False),
)
def test_a_held_page_is_the_page_anywhere_in_its_range(
    place: int, anchored_at: float, arrivals: float, later: float
) -> None:
    positions = ListPositions(page_size=100, anchors={"e": Anchor(place, anchored_at)})
    page, low, high = positions.held_page(positions.anchors["e"], arrivals=arrivals)
    moved = ListPositions(page_size=100, arrivals=arrivals + later, anchors=positions.anchors)
    expected = moved.pages(["e"], now_s=0.0)["e"]
    at = ListPositions(page_size=100, arrivals=arrivals, anchors=positions.anchors)
    assert page == at.pages(["e"], now_s=0.0)["e"]
    if low <= arrivals + later < high:
        assert expected == page


@settings(max_examples=300, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=0, max_value=5_000), max_size=30),
    age_s=st.floats(min_value=0, max_value=10_000, allow_nan=False),
    older_s=st.floats(min_value=0, max_value=10_000, allow_nan=False),
)
def test_a_held_end_rate_holds_until_its_age_bucket_ends(
    durations: list[float], age_s: float, older_s: float
) -> None:
    lifetimes = Lifetimes()
    for duration_s in durations:
        lifetimes = lifetimes.ended("r", duration_s)
    rates = EndRates(lifetimes, horizon_s=15.0)
    rate, until_age_s = rates.held("r", age_s=age_s)
    assert until_age_s > age_s
    if age_s + older_s < until_age_s:
        assert EndRates(lifetimes, horizon_s=15.0).held("r", age_s=age_s + older_s)[0] == rate


def _state(execution_id: str) -> TrackedExecution:
    return TrackedExecution(
        source="s",
        id=execution_id,
        status="running",
        credits_used=0.0,
        kind="agent",
        responder_id=f"r{int(execution_id[1:]) % 3}",
        parent_id=None,
        agent_id=None,
        workflow_id=None,
        created_at=_AT,
        updated_at=_AT,
        started_at=_AT,
        ended_at=None,
        is_purged=False,
        last_seen_at=_AT,
    )


_step = st.tuples(
    st.floats(min_value=0.0, max_value=5.0),  # seconds until this plan
    st.integers(min_value=1, max_value=4),  # the page read after it
    st.integers(min_value=0, max_value=3),  # executions that arrived meanwhile
    st.integers(min_value=0, max_value=2),  # tracked executions that ended
    st.booleans(),  # the end-rate estimates are refreshed before this plan
)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=25))
def test_kept_views_are_the_views_a_fresh_plan_computes(
    steps: list[tuple[float, int, int, int, bool]],
) -> None:
    lifetimes = Lifetimes()
    for duration_s in (3.0, 40.0, 200.0, 900.0):
        lifetimes = lifetimes.ended("r1", duration_s)
    rates = EndRates(lifetimes, horizon_s=15.0)
    page_size = 10
    listed = [f"e{i}" for i in range(40)]  # newest first
    running = {i: _state(i) for i in listed[::2]}
    started = {i: -float(n) * 7.0 for n, i in enumerate(listed)}
    last_read: dict[str, float] = {}
    positions = ListPositions(page_size=page_size, arrival_rate_per_s=0.5)
    held = HeldViews()
    now_s = 0.0
    made = len(listed)

    def times(state: TrackedExecution, at_s: float) -> tuple[float, float, bool]:
        read = last_read.get(state.id)
        return started[state.id], at_s - 100.0 if read is None else read, read is not None

    for wait_s, page, arrived, ended, refreshed in steps:
        now_s += wait_s
        if refreshed:
            # Another execution ended: new estimates, a new EndRates.
            lifetimes = lifetimes.ended(f"r{len(lifetimes.recent) % 3}", 5.0 * now_s + 1.0)
            rates = EndRates(lifetimes, horizon_s=15.0)
        views = held.views(running, now_s=now_s, positions=positions, end_rates=rates, times=times)
        fresh = HeldViews().views(
            running, now_s=now_s, positions=positions, end_rates=rates, times=times
        )
        assert {v.id: (v.page, v.last_read_s, v.end_rate_per_s) for v in views} == {
            v.id: (v.page, v.last_read_s, v.end_rate_per_s) for v in fresh
        }
        for _ in range(arrived):
            new = f"e{made}"
            made += 1
            listed.insert(0, new)
            started[new] = now_s
            running[new] = _state(new)
        for execution_id in list(running)[:ended]:
            del running[execution_id]
        shown = tuple(listed[(page - 1) * page_size : page * page_size])
        before = positions.anchors
        positions = positions.after_page(page, shown, now_s=now_s, keep=set(running))
        for execution_id in shown:
            if execution_id in running:
                last_read[execution_id] = now_s
        held.touch(shown)
        held.touch(before.keys() - positions.anchors.keys())
