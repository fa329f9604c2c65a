"""Recurring time intervals on the wall clock of their zone, DST days included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.time_intervals import (
    TimeIntervalError,
    in_any,
    time_interval,
)

BERLIN = "Europe/Berlin"


def _minutes_inside(interval_start: datetime, hours: int, contains: object) -> int:
    """How many minutes of real time, from `interval_start` for `hours`, are inside."""
    check = contains  # a bound method
    return sum(
        1
        for minute in range(hours * 60)
        if check(interval_start + timedelta(minutes=minute))  # type: ignore[operator]
    )


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 12, 5, 10, 0, tzinfo=UTC), True),  # Saturday 11:00 Berlin
        (datetime(2026, 12, 4, 22, 59, tzinfo=UTC), False),  # Friday 23:59 Berlin
        (datetime(2026, 12, 4, 23, 0, tzinfo=UTC), True),  # Saturday 00:00 Berlin
        (datetime(2026, 12, 6, 22, 59, tzinfo=UTC), True),  # Sunday 23:59 Berlin
        (datetime(2026, 12, 6, 23, 0, tzinfo=UTC), False),  # Monday 00:00 Berlin
    ],
)
def test_weekends_are_judged_on_the_local_clock(moment: datetime, expected: bool) -> None:
    weekends = time_interval("weekends", weekdays=["saturday", "sunday"], location=BERLIN)
    assert weekends.contains(moment) is expected


@pytest.mark.parametrize(
    ("fields", "moment", "expected"),
    [
        ({"times": [("09:00", "18:00")]}, datetime(2026, 12, 1, 9, 0, tzinfo=UTC), True),
        ({"times": [("09:00", "18:00")]}, datetime(2026, 12, 1, 18, 0, tzinfo=UTC), False),
        ({"times": [("09:00", "18:00")]}, datetime(2026, 12, 1, 8, 59, tzinfo=UTC), False),
        ({"times": [("22:00", "24:00")]}, datetime(2026, 12, 1, 23, 59, tzinfo=UTC), True),
        ({"weekdays": ["monday:friday"]}, datetime(2026, 12, 2, 12, tzinfo=UTC), True),
        ({"weekdays": ["monday:friday"]}, datetime(2026, 12, 6, 12, tzinfo=UTC), False),
        ({"days_of_month": ["-1"]}, datetime(2026, 2, 28, 12, tzinfo=UTC), True),
        ({"days_of_month": ["-1"]}, datetime(2028, 2, 28, 12, tzinfo=UTC), False),  # leap
        ({"days_of_month": ["1:7"]}, datetime(2026, 12, 7, 12, tzinfo=UTC), True),
        ({"days_of_month": ["1:7"]}, datetime(2026, 12, 8, 12, tzinfo=UTC), False),
        ({"days_of_month": [15]}, datetime(2026, 12, 15, 0, tzinfo=UTC), True),
        ({"months": ["december"]}, datetime(2026, 12, 15, tzinfo=UTC), True),
        ({"months": ["1:3"]}, datetime(2026, 3, 31, tzinfo=UTC), True),
        ({"months": ["january:march"]}, datetime(2026, 4, 1, tzinfo=UTC), False),
        (
            {"weekdays": ["saturday"], "times": [("10:00", "12:00")]},
            datetime(2026, 12, 5, 11, tzinfo=UTC),
            True,
        ),
        (
            {"weekdays": ["saturday"], "times": [("10:00", "12:00")]},
            datetime(2026, 12, 4, 11, tzinfo=UTC),
            False,
        ),
        ({}, datetime(2026, 12, 4, 11, tzinfo=UTC), True),
    ],
)
def test_each_field_given_must_match(
    fields: dict[str, object], moment: datetime, expected: bool
) -> None:
    assert time_interval("x", **fields).contains(moment) is expected  # type: ignore[arg-type]


def test_a_spring_forward_night_has_one_hour_less_of_quiet_hours() -> None:
    # Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 01:00-04:00 on the clock is two
    # hours of real time, and the clock never shows 02:xx.
    night = time_interval("night", times=[("01:00", "04:00")], location=BERLIN)
    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # 23:00 CET
    assert _minutes_inside(start, 6, night.contains) == 120
    assert night.contains(datetime(2026, 3, 29, 0, 59, tzinfo=UTC))  # 01:59 CET
    assert night.contains(datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST
    assert not night.contains(datetime(2026, 3, 29, 2, 0, tzinfo=UTC))  # 04:00 CEST


def test_a_fall_back_night_has_one_hour_more_of_quiet_hours() -> None:
    # Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 01:00-04:00 on the clock is four
    # hours of real time, the repeated 02:xx counted both times.
    night = time_interval("night", times=[("01:00", "04:00")], location=BERLIN)
    start = datetime(2026, 10, 24, 21, 0, tzinfo=UTC)  # 23:00 CEST
    assert _minutes_inside(start, 8, night.contains) == 240
    assert night.contains(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert night.contains(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET


def test_a_weekday_keeps_its_length_on_the_clock_across_dst() -> None:
    # Sunday 2026-03-29 lasts 23 hours of real time in Berlin, Sunday 2026-10-25 lasts 25.
    sunday = time_interval("sunday", weekdays=["sunday"], location=BERLIN)
    assert _minutes_inside(datetime(2026, 3, 28, 12, tzinfo=UTC), 48, sunday.contains) == 23 * 60
    assert _minutes_inside(datetime(2026, 10, 24, 12, tzinfo=UTC), 48, sunday.contains) == 25 * 60


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"weekdays": ["funday"]}, r"weekdays\[0\]: unknown 'funday'"),
        ({"weekdays": ["monday", "friday:monday"]}, r"weekdays\[1\]: .* runs backwards"),
        ({"times": [("9", "18:00")]}, r"times\[0\].start: '9' is not a time"),
        ({"times": [("09:00", "24:30")]}, r"times\[0\].end: .* between 00:00 and 24:00"),
        ({"times": [("22:00", "06:00")]}, r"times\[0\]: end 06:00 should be after"),
        ({"days_of_month": ["0"]}, r"days_of_month\[0\]: 0 is not a day"),
        ({"days_of_month": ["x"]}, r"days_of_month\[0\]: 'x' is not a day"),
        ({"days_of_month": ["9:3"]}, r"days_of_month\[0\]: .* runs backwards"),
        ({"months": ["13"]}, r"months\[0\]: unknown '13'"),
        ({"location": "Mars/Olympus"}, r"location: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_intervals_name_the_field(fields: dict[str, object], complaint: str) -> None:
    with pytest.raises(TimeIntervalError, match=complaint):
        time_interval("x", **fields)  # type: ignore[arg-type]


def test_in_any_names_the_first_interval_that_holds() -> None:
    intervals = {
        "weekends": time_interval("weekends", weekdays=["saturday", "sunday"]),
        "nights": time_interval("nights", times=[("00:00", "06:00")]),
    }
    saturday_night = datetime(2026, 12, 5, 1, tzinfo=UTC)
    assert in_any(["weekends", "nights"], intervals, saturday_night) == "weekends"
    assert in_any(["nights", "weekends"], intervals, saturday_night) == "nights"
    assert in_any(["nights"], intervals, datetime(2026, 12, 2, 12, tzinfo=UTC)) is None
    assert in_any(["unknown"], intervals, saturday_night) is None


@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    zone_name=st.sampled_from(["UTC", BERLIN, "America/New_York", "Australia/Lord_Howe"]),
)
def test_the_weekday_split_covers_every_instant_once(moment: datetime, zone_name: str) -> None:
    weekdays = time_interval("wd", weekdays=["monday:friday"], location=zone_name)
    weekends = time_interval("we", weekdays=["saturday", "sunday"], location=zone_name)
    assert weekdays.contains(moment) != weekends.contains(moment)
