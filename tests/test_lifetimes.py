"""Learned end rates of running executions (domain.lifetimes)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.lifetimes import POOLED, Lifetimes


def _learned(responder: str, durations: list[float], base: Lifetimes | None = None) -> Lifetimes:
    lifetimes = base or Lifetimes()
    for duration in durations:
        lifetimes = lifetimes.ended(responder, duration)
    return lifetimes


@pytest.mark.parametrize(
    ("age_s", "expected"),
    [(0.0, 1 / 30), (30.0, 1 / 60), (3570.0, 1 / 3600)],
)
def test_with_no_history_the_long_tailed_prior_applies(age_s: float, expected: float) -> None:
    rate = Lifetimes().end_rate_per_s("agent-a", age_s=age_s, horizon_s=15.0)
    assert rate == pytest.approx(expected)


def test_a_responder_whose_runs_last_ten_seconds_is_expected_to_end_soon() -> None:
    lifetimes = _learned("fast", [10.0] * 50)
    young = lifetimes.end_rate_per_s("fast", age_s=5.0, horizon_s=15.0)
    # Fifty of fifty at risk end within the horizon: close to one per horizon.
    assert young == pytest.approx(1 / 15, rel=0.1)
    assert young > Lifetimes().end_rate_per_s("fast", age_s=5.0, horizon_s=15.0)


def test_past_every_observed_duration_the_estimate_falls_back_to_the_prior() -> None:
    lifetimes = _learned("fast", [10.0] * 50)
    old = lifetimes.end_rate_per_s("fast", age_s=600.0, horizon_s=15.0)
    assert old == pytest.approx(1 / 630)


def test_an_unknown_responder_is_read_with_the_pooled_history() -> None:
    lifetimes = _learned("fast", [10.0] * 50)
    unknown = lifetimes.end_rate_per_s("never-seen", age_s=5.0, horizon_s=15.0)
    pooled = lifetimes.end_rate_per_s(POOLED, age_s=5.0, horizon_s=15.0)
    assert unknown == pytest.approx(pooled)
    assert unknown > Lifetimes().end_rate_per_s("never-seen", age_s=5.0, horizon_s=15.0)


def test_responders_are_learned_apart() -> None:
    lifetimes = _learned("slow", [3600.0] * 50, _learned("fast", [10.0] * 50))
    fast = lifetimes.end_rate_per_s("fast", age_s=5.0, horizon_s=15.0)
    slow = lifetimes.end_rate_per_s("slow", age_s=5.0, horizon_s=15.0)
    assert fast > 10 * slow


def test_only_the_most_recent_durations_are_kept() -> None:
    lifetimes = _learned("a", [float(i) for i in range(1000)], Lifetimes(keep=16))
    assert lifetimes.samples("a") == 16
    assert lifetimes.recent["a"][0] == 984.0


@given(
    durations=st.lists(st.floats(min_value=-5.0, max_value=1e6), max_size=40),
    age_s=st.floats(min_value=0.0, max_value=1e7),
    horizon_s=st.floats(min_value=0.0, max_value=1e4),
)
def test_every_estimate_is_positive_and_finite(
    durations: list[float], age_s: float, horizon_s: float
) -> None:
    rate = _learned("r", durations).end_rate_per_s("r", age_s=age_s, horizon_s=horizon_s)
    assert rate > 0
    assert math.isfinite(rate)
