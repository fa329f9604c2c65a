"""The one set of formatters: durations in the configuration's spelling and its named
variants, numbers and credits, UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from relay.durations import (
    format_duration,
    format_number,
    format_rough_s,
    format_whole_duration,
    parse_duration,
    utc_iso,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.25, "250ms"), (15, "15s"), (5400, "1h30m"), (7 * 86400, "7d")],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_whole_duration_rounds_to_the_second() -> None:
    assert format_whole_duration(timedelta(seconds=750.4)) == "12m30s"
    assert format_whole_duration(timedelta(milliseconds=400)) == "0s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(42, "42s"), (119, "119s"), (600, "10m"), (3600, "60m"), (5400, "90m"), (9000, "2.5h")],
)
def test_format_rough_s(seconds: float, text: str) -> None:
    assert format_rough_s(seconds) == text


def test_format_number() -> None:
    assert format_number(1234.5) == "1,234.5"
    assert format_number(3.0) == "3"


def test_utc_iso_converts_to_utc_first() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 3, 1, 14, 0, tzinfo=plus_two)
    assert utc_iso(moment) == "2026-03-01T12:00:00Z"
    assert utc_iso(moment.replace(microsecond=5)) == "2026-03-01T12:00:00.000005Z"
    assert utc_iso(moment, timespec="seconds", sep=" ") == "2026-03-01 12:00:00Z"
    assert utc_iso(datetime(2026, 3, 1, tzinfo=UTC), timespec="microseconds") == (
        "2026-03-01T00:00:00.000000Z"
    )
    assert utc_iso(None) is None


@pytest.mark.parametrize("text", ["99999999999999999999s", "3000000000d", "9" * 400 + "w"])
def test_a_duration_too_long_for_timedelta_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration(text)
