"""When an interval next begins or stops holding (`next_change`, `change_points`),
computed from its boundaries on the location's clock, DST days included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.time_intervals import change_points, time_interval

BERLIN = "Europe/Berlin"
# Berlin 2026: spring forward on 29 March at 01:00 UTC (02:00 CET -> 03:00 CEST), fall
# back on 25 October at 01:00 UTC (03:00 CEST -> 02:00 CET).


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


OFFICE = {"times": [("09:00", "18:00")], "location": BERLIN}


@pytest.mark.parametrize(
    ("fields", "moment", "expected"),
    [
        (OFFICE, utc(2026, 3, 2, 10), utc(2026, 3, 2, 17)),  # inside: 18:00 CET
        (OFFICE, utc(2026, 3, 2, 18), utc(2026, 3, 3, 8)),  # outside: 09:00 CET
        (OFFICE, utc(2026, 3, 2, 17), utc(2026, 3, 3, 8)),  # at the end: the next start
        # Over the spring-forward night, the office opens at 09:00 summer time.
        (OFFICE, utc(2026, 3, 28, 20), utc(2026, 3, 29, 7)),
        # A start in the skipped hour: the clock jumps over 02:30 at the transition.
        (
            {"times": [("02:30", "04:00")], "location": BERLIN},
            utc(2026, 3, 28, 23),
            utc(2026, 3, 29, 1),
        ),
        # Fall back: [01:00, 02:30) ends at 02:30 summer time, holds again when the clock
        # turns back to 02:00, and ends at 02:30 winter time.
        (
            {"times": [("01:00", "02:30")], "location": BERLIN},
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 0, 30),
        ),
        (
            {"times": [("01:00", "02:30")], "location": BERLIN},
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1),
        ),
        (
            {"times": [("01:00", "02:30")], "location": BERLIN},
            utc(2026, 10, 25, 1),
            utc(2026, 10, 25, 1, 30),
        ),
        # A night given as two ranges is one stretch: it ends at 07:00.
        (
            {"times": [("22:00", "24:00"), ("00:00", "07:00")]},
            utc(2026, 3, 2, 23),
            utc(2026, 3, 3, 7),
        ),
        (
            {"weekdays": ["saturday", "sunday"], "location": BERLIN},
            utc(2026, 3, 7, 9),
            utc(2026, 3, 8, 23),
        ),
        (
            {"weekdays": ["sunday"], "location": BERLIN},
            utc(2026, 10, 25, 10),
            utc(2026, 10, 25, 23),
        ),
        ({"months": ["february"], "location": BERLIN}, utc(2026, 3, 2), utc(2027, 1, 31, 23)),
        ({"days_of_month": ["-1"]}, utc(2026, 2, 10), utc(2026, 2, 28)),
        ({"days_of_month": ["-1"]}, utc(2026, 2, 28, 12), utc(2026, 3, 1)),
        ({}, utc(2026, 3, 2), None),  # always holds
        ({"months": ["february"], "days_of_month": [30]}, utc(2026, 3, 2), None),  # never
    ],
)
def test_next_change(fields: dict[str, Any], moment: datetime, expected: datetime | None) -> None:
    interval = time_interval("x", **fields)
    changed = interval.next_change(moment)
    assert changed == expected
    if changed is not None:
        assert interval.contains(changed) is not interval.contains(moment)
        assert interval.contains(changed - timedelta(seconds=1)) is interval.contains(moment)


def test_change_points_are_sorted_unique_and_within_the_span() -> None:
    night = time_interval("n", times=[("22:00", "24:00"), ("00:00", "07:00")], location=BERLIN)
    office = time_interval("o", **OFFICE)
    start = utc(2026, 3, 28, 12)
    points = change_points([night, office], start, within=timedelta(days=2))
    assert points == sorted(set(points))
    assert all(start < p <= start + timedelta(days=2) for p in points)
    assert utc(2026, 3, 29, 1) in points  # the spring-forward transition itself
    assert utc(2026, 3, 29, 5) in points  # 07:00 summer time


# --- property: the same answer as a walk minute by minute -------------------------------

_ZONES = st.sampled_from(["UTC", BERLIN, "America/New_York", "Australia/Lord_Howe"])
_CLOCK = st.integers(min_value=0, max_value=23 * 4).map(lambda q: f"{q // 4:02d}:{q % 4 * 15:02d}")
_AROUND_DST = st.sampled_from(
    [utc(2026, 3, 28), utc(2026, 10, 24), utc(2026, 3, 7), utc(2026, 4, 4), utc(2026, 10, 3)]
)


@st.composite
def _interval(draw: st.DrawFn) -> Any:
    times = []
    if draw(st.booleans()):
        first, second = sorted(draw(st.lists(_CLOCK, min_size=2, max_size=2, unique=True)))
        times.append((first, second))
    days = draw(st.lists(st.sampled_from(["saturday", "sunday", "monday"]), max_size=2))
    return time_interval("x", times=times, weekdays=days, location=draw(_ZONES))


@settings(max_examples=40, deadline=None)
@given(_interval(), _AROUND_DST, st.integers(min_value=0, max_value=48 * 60))
def test_next_change_agrees_with_a_walk_minute_by_minute(
    interval: Any, day: datetime, offset_min: int
) -> None:
    moment = day + timedelta(minutes=offset_min)
    within = timedelta(days=2)
    inside = interval.contains(moment)
    walked = next(
        (
            moment + timedelta(minutes=m)
            for m in range(1, int(within.total_seconds() // 60) + 1)
            if interval.contains(moment + timedelta(minutes=m)) != inside
        ),
        None,
    )
    assert interval.next_change(moment, within=within) == walked
