"""`time_intervals` and matcher lists in the configuration: read, built, refused by field."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from relay.matchers import Matcher
from relay.settings import Matchers
from tests.test_settings import MINIMAL, load, only_problem


def test_time_intervals_are_built_by_name(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        MINIMAL
        + """
time_intervals:
  - name: weekends
    weekdays: [saturday, sunday]
    location: Europe/Berlin
  - name: office-hours
    weekdays: ["monday:friday"]
    times: [{start: "09:00", end: "18:00"}]
    months: [1, "march:december"]
    days_of_month: ["1:-1"]
""",
    )
    intervals = settings.intervals()
    assert sorted(intervals) == ["office-hours", "weekends"]
    saturday_noon = datetime(2026, 12, 5, 11, tzinfo=UTC)  # 12:00 in Berlin
    assert intervals["weekends"].contains(saturday_noon)
    assert not intervals["office-hours"].contains(saturday_noon)
    assert intervals["office-hours"].contains(datetime(2026, 12, 2, 10, tzinfo=UTC))
    assert not intervals["office-hours"].contains(datetime(2026, 2, 2, 10, tzinfo=UTC))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "{name: x, weekdays: [saturday, caturday]}",
            "time_intervals.0.weekdays.1: unknown 'caturday'",
        ),
        (
            '{name: x, times: [{start: "09:00", end: "25:00"}]}',
            "time_intervals.0.times.0.end: '25:00' is not a time between 00:00 and 24:00",
        ),
        ("{name: x, location: Europe/Atlantis}", "time_intervals.0.location: unknown time zone"),
        ("{name: x, days_of_month: [32]}", "time_intervals.0.days_of_month.0: 32 is not a day"),
        ("{name: x, weekday: [monday]}", "time_intervals.0.weekday"),
    ],
)
def test_a_bad_interval_names_its_field(tmp_path: Path, entry: str, expected: str) -> None:
    assert expected in only_problem(tmp_path, MINIMAL + f"time_intervals:\n  - {entry}\n")


def test_interval_names_are_unique(tmp_path: Path) -> None:
    problem = only_problem(
        tmp_path, MINIMAL + "time_intervals:\n  - {name: x}\n  - {name: x, months: [1]}\n"
    )
    assert problem.startswith("time_intervals.1.name: duplicate time interval name 'x'")


def test_matcher_lists_are_parsed_and_located() -> None:
    adapter = TypeAdapter(Matchers)
    assert adapter.validate_python(['severity="critical"', '{a=~"x.*", b!="y"}']) == [
        Matcher("severity", "=", "critical"),
        Matcher("a", "=~", "x.*"),
        Matcher("b", "!=", "y"),
    ]
    assert adapter.dump_python([Matcher("team", "=~", "pay.*")]) == ['team=~"pay.*"']
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(['a="1"', 'team=~"("', 3])
    errors = {tuple(e["loc"]): e["msg"] for e in caught.value.errors()}
    assert list(errors) == [(1,), (2,)]
    assert "invalid regex" in errors[(1,)]
    assert "should be a string" in errors[(2,)]


def test_unquoted_times_and_ranges_are_read_as_written(tmp_path: Path) -> None:
    # YAML 1.1 would read 10:00 as 600 and 1:15 as 75 (base 60); Alertmanager users write
    # them unquoted.
    settings = load(
        tmp_path,
        MINIMAL
        + """
time_intervals:
  - name: mornings
    times: [{start: 9:30, end: 12:00}]
    days_of_month: [1:15]
    months: [1:3]
""",
    )
    mornings = settings.intervals()["mornings"]
    assert mornings.contains(datetime(2026, 2, 10, 9, 30, tzinfo=UTC))
    assert not mornings.contains(datetime(2026, 2, 10, 12, 0, tzinfo=UTC))
    assert not mornings.contains(datetime(2026, 2, 16, 10, 0, tzinfo=UTC))
    assert not mornings.contains(datetime(2026, 4, 10, 10, 0, tzinfo=UTC))
