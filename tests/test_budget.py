"""The request budget (domain.budget): a hard ceiling in every rolling window, paced,
slowed by 429s and climbing back."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.budget import RequestBudget


def _spend(budget: RequestBudget, count: int, *, start_s: float = 0.0) -> RequestBudget:
    now_s = start_s
    for _ in range(count):
        now_s = budget.next_slot_s(now_s)
        budget = budget.spent(now_s)
    return budget


@pytest.mark.parametrize(
    ("limit", "expected_gap_s"),
    [(60, 1.0), (120, 0.5), (6, 10.0), (1, 60.0)],
)
def test_requests_are_paced_evenly_through_the_window(limit: int, expected_gap_s: float) -> None:
    budget = _spend(RequestBudget(limit=limit), 3)
    gaps = [b - a for a, b in itertools.pairwise(budget.sent_s)]
    assert gaps == pytest.approx([expected_gap_s] * len(gaps))


def test_a_full_window_waits_until_its_oldest_request_expires() -> None:
    # A budget whose pace is faster than its window allows (a rate restored by hand).
    budget = RequestBudget(limit=3, window_s=60.0, rate_per_s=10.0)
    budget = _spend(budget, 3)
    assert budget.sent_s == pytest.approx((0.0, 0.1, 0.2))
    assert budget.next_slot_s(0.3) == pytest.approx(60.0)
    assert budget.used(59.9) == 3
    assert budget.used(60.05) == 2


def test_spending_before_the_slot_is_refused() -> None:
    budget = RequestBudget(limit=60).spent(0.0)
    with pytest.raises(ValueError, match="not allowed"):
        budget.spent(0.5)


def test_a_429_halves_the_rate_blocks_until_retry_after_and_success_climbs_back() -> None:
    budget = RequestBudget(limit=60).spent(0.0)
    limited = budget.rate_limited(now_s=0.1, retry_after_s=30.0)
    assert limited.rate_per_s == pytest.approx(0.5)
    assert limited.throttled
    assert limited.next_slot_s(0.2) == pytest.approx(30.1)
    climbed = limited
    for _ in range(10):
        climbed = climbed.succeeded()
    assert climbed.rate_per_s == pytest.approx(1.0)
    assert not climbed.throttled
    assert climbed.succeeded() is climbed


def test_repeated_429s_never_go_below_the_floor() -> None:
    budget = RequestBudget(limit=60)
    for _ in range(50):
        budget = budget.rate_limited(now_s=0.0, retry_after_s=None)
    assert budget.rate_per_s == pytest.approx(0.1)


@settings(max_examples=300, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=120),
    events=st.lists(
        st.tuples(
            st.sampled_from(["request", "429", "ok", "idle"]),
            st.floats(min_value=0.0, max_value=30.0),
            st.one_of(st.none(), st.floats(min_value=0.0, max_value=120.0)),
        ),
        max_size=300,
    ),
)
def test_no_rolling_window_ever_holds_more_than_the_limit(
    limit: int, events: list[tuple[str, float, float | None]]
) -> None:
    budget = RequestBudget(limit=limit)
    now_s = 0.0
    sent: list[float] = []
    for kind, wait_s, retry_after_s in events:
        now_s += wait_s
        if kind == "request":
            now_s = budget.next_slot_s(now_s)
            budget = budget.spent(now_s)
            sent.append(now_s)
        elif kind == "429":
            budget = budget.rate_limited(now_s=now_s, retry_after_s=retry_after_s)
        elif kind == "ok":
            budget = budget.succeeded()
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + budget.window_s - 1e-9]
        assert len(in_window) <= limit


@pytest.mark.parametrize(
    ("per_minute", "limit", "window_s"),
    [(60, 60, 60.0), (1.9, 1, 60.0), (0.5, 1, 120.0), (600, 600, 60.0)],
)
def test_a_budget_is_never_rounded_up(per_minute: float, limit: int, window_s: float) -> None:
    budget = RequestBudget.per_minute(per_minute)
    assert (budget.limit, budget.window_s) == (limit, pytest.approx(window_s))
    assert budget.limit / budget.window_s * 60 <= per_minute + 1e-9


def test_a_margin_keeps_a_late_arrival_inside_the_budget_at_the_api() -> None:
    # Sent at the budget's pace, one request delayed by up to the margin on its way still
    # leaves at most `limit` arrivals in any 60 s at the API.
    budget = RequestBudget.per_minute(60, margin_s=1.0)
    sent = [0.0]
    budget = budget.spent(0.0)
    for _ in range(130):
        at_s = budget.next_slot_s(sent[-1])
        budget = budget.spent(at_s)
        sent.append(at_s)
    arrivals = [sent[0] + 0.99, *sent[1:]]  # the first one took 0.99 s to arrive
    for start in arrivals:
        assert len([t for t in arrivals if start <= t < start + 60.0]) <= 60
