"""Recurring time intervals (quiet hours, weekends), as Alertmanager's `time_intervals`.

Invariants:
- An interval is judged on the wall clock of its `location` (an IANA zone, UTC when
  omitted): `times` 09:00-18:00 in Europe/Berlin are 09:00-18:00 Berlin time on every
  day of the year, summer or winter. An instant is converted to that zone, never the
  other way round, so a DST change needs no special case: on a spring-forward day the
  skipped hour simply never shows on the clock, and on a fall-back day the repeated hour
  is inside the interval both times it shows.
- Each field left empty matches every value; the interval contains an instant when every
  field given matches it. `times` are `[start, end)` in minutes of the day; `24:00` may
  end one.
- `days_of_month` ranges are inclusive and may count from the end of the month (`-1` is
  its last day); `weekdays` and `months` ranges are inclusive (`monday:friday`).
- Every problem is a `TimeIntervalError` whose message begins with the field's path
  within the interval (`weekdays[1]: ...`).
- `change_points` lists every instant at which an interval may begin or stop containing
  the moment: local midnights and `times` boundaries on the location's clock, converted
  to UTC with both readings of an ambiguous wall time, and the zone's DST transitions
  themselves (where a skipped or repeated wall time is crossed). Between two of them
  every interval's answer stays the same, so `next_change` and a route's "muted until"
  need only judge these instants, never walk minute by minute.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MINUTES_A_DAY = 24 * 60
_DAY = timedelta(days=1)
# Every interval repeats within a year and a day (but a 29 February, every four years).
YEAR = timedelta(days=366)

__all__ = [
    "MONTHS",
    "WEEKDAYS",
    "YEAR",
    "TimeInterval",
    "TimeIntervalError",
    "change_points",
    "in_any",
    "time_interval",
    "zone",
]


class TimeIntervalError(ValueError):
    """A time interval that cannot be read; the message starts with the field's path."""


@dataclass(frozen=True, slots=True)
class TimeInterval:
    name: str
    times: tuple[tuple[int, int], ...] = ()  # [start, end) minutes of the day
    weekdays: frozenset[int] = frozenset()  # 0 is Monday
    days_of_month: tuple[tuple[int, int], ...] = ()  # inclusive; negative: from the end
    months: frozenset[int] = frozenset()  # 1 is January
    location: str = "UTC"

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (aware) falls in the interval, on its location's clock."""
        local = moment.astimezone(zone(self.location))
        if self.months and local.month not in self.months:
            return False
        if self.weekdays and local.weekday() not in self.weekdays:
            return False
        if self.days_of_month and not self._day_matches(local):
            return False
        if self.times:
            minute = local.hour * 60 + local.minute
            return any(start <= minute < end for start, end in self.times)
        return True

    def next_change(self, moment: datetime, *, within: timedelta = YEAR) -> datetime | None:
        """The first instant after `moment` at which `contains` answers otherwise (None:
        not within `within`)."""
        inside = self.contains(moment)
        for point in change_points([self], moment, within=within):
            if self.contains(point) != inside:
                return point
        return None

    def boundaries(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Instants (UTC) around (after, until] at which `contains` may change: local
        midnights and `times` boundaries, both readings of each, and DST transitions."""
        where = zone(self.location)
        minutes = sorted({0} | {m % _MINUTES_A_DAY for pair in self.times for m in pair})
        day = after.astimezone(where).date()
        last = until.astimezone(where).date()
        while day <= last:
            midnight = datetime.combine(day, time(0))
            for minute in minutes:
                wall = midnight + timedelta(minutes=minute)
                yield wall.replace(tzinfo=where).astimezone(UTC)
                yield wall.replace(tzinfo=where, fold=1).astimezone(UTC)
            transition = _transition_on(where, day)
            if transition is not None:
                yield transition
            day += _DAY

    def _day_matches(self, local: datetime) -> bool:
        last = calendar.monthrange(local.year, local.month)[1]
        for start, end in self.days_of_month:
            first_day = start if start > 0 else last + 1 + start
            last_day = end if end > 0 else last + 1 + end
            if first_day <= local.day <= last_day:
                return True
        return False


def in_any(
    names: Iterable[str], intervals: Mapping[str, TimeInterval], moment: datetime
) -> str | None:
    """The first of `names` whose interval contains `moment`, or None."""
    for name in names:
        interval = intervals.get(name)
        if interval is not None and interval.contains(moment):
            return name
    return None


def change_points(
    intervals: Iterable[TimeInterval], after: datetime, *, within: timedelta
) -> list[datetime]:
    """Every instant in (after, after + within] at which one of `intervals` may begin
    or stop containing the moment, in order (see the module invariants)."""
    until = after + within
    points = {p for i in intervals for p in i.boundaries(after, until) if after < p <= until}
    return sorted(points)


def _transition_on(where: ZoneInfo, day: date) -> datetime | None:
    """The instant (UTC, to the second) the zone's offset changes on local `day`, if it
    does (the first change, should a day hold two)."""
    start = datetime.combine(day, time(0), tzinfo=where).astimezone(UTC)
    end = datetime.combine(day + _DAY, time(0), tzinfo=where).astimezone(UTC)
    before = start.astimezone(where).utcoffset()
    if end.astimezone(where).utcoffset() == before:
        return None
    low, high = 0, int((end - start).total_seconds())  # offset at low: before; at high: not
    while high - low > 1:
        middle = (low + high) // 2
        if (start + timedelta(seconds=middle)).astimezone(where).utcoffset() == before:
            low = middle
        else:
            high = middle
    return start + timedelta(seconds=high)


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; `TimeIntervalError` naming `location` when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeIntervalError(
            f"location: unknown time zone {name!r}; use an IANA name like Europe/Berlin"
        ) from None


def time_interval(
    name: str,
    *,
    times: Sequence[tuple[str, str]] = (),
    weekdays: Sequence[str] = (),
    days_of_month: Sequence[str | int] = (),
    months: Sequence[str | int] = (),
    location: str | None = None,
) -> TimeInterval:
    """A `TimeInterval` from its configured spelling (see the module invariants)."""
    where = location or "UTC"
    zone(where)
    return TimeInterval(
        name=name,
        times=tuple(_time_range(start, end, f"times[{i}]") for i, (start, end) in enumerate(times)),
        weekdays=frozenset(_named_days(weekdays)),
        days_of_month=tuple(
            _day_range(str(value), f"days_of_month[{i}]") for i, value in enumerate(days_of_month)
        ),
        months=frozenset(_named_months(months)),
        location=where,
    )


def _minute_of_day(text: str, path: str) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise TimeIntervalError(f"{path}: {text!r} is not a time like 09:00")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > _MINUTES_A_DAY:
        raise TimeIntervalError(f"{path}: {text!r} is not a time between 00:00 and 24:00")
    return value


def _time_range(start: str, end: str, path: str) -> tuple[int, int]:
    first = _minute_of_day(start, f"{path}.start")
    last = _minute_of_day(end, f"{path}.end")
    if first >= last:
        raise TimeIntervalError(
            f"{path}: end {end} should be after start {start} "
            "(for a night, give two ranges: 22:00-24:00 and 00:00-06:00)"
        )
    return first, last


def _range(text: str) -> tuple[str, str]:
    first, sep, last = text.strip().partition(":")
    return (first.strip(), last.strip()) if sep else (first.strip(), first.strip())


def _named_days(values: Sequence[str]) -> list[int]:
    return _named(values, WEEKDAYS, "weekdays", base=0)


def _named_months(values: Sequence[str | int]) -> list[int]:
    return _named([str(v) for v in values], MONTHS, "months", base=1)


def _named(values: Sequence[str], names: Sequence[str], field: str, *, base: int) -> list[int]:
    """Numbers of `names` (or 1-based numbers, for months) in each `a` or `a:b` of `values`."""
    chosen: list[int] = []
    for index, value in enumerate(values):
        path = f"{field}[{index}]"
        first, last = (_position(part, names, path, base=base) for part in _range(str(value)))
        if first > last:
            raise TimeIntervalError(f"{path}: {value!r} runs backwards; give it start:end")
        chosen.extend(range(first, last + 1))
    return chosen


def _position(text: str, names: Sequence[str], path: str, *, base: int) -> int:
    lowered = text.lower()
    if lowered in names:
        return names.index(lowered) + base
    if base == 1 and lowered.isdigit() and 1 <= int(lowered) <= len(names):
        return int(lowered)
    allowed = f"{names[0]} ... {names[-1]}" + (" or 1 ... 12" if base == 1 else "")
    raise TimeIntervalError(f"{path}: unknown {text!r}; use {allowed}")


def _day_range(text: str, path: str) -> tuple[int, int]:
    first_text, last_text = _range(text)
    try:
        first, last = int(first_text), int(last_text)
    except ValueError:
        raise TimeIntervalError(f"{path}: {text!r} is not a day like 1, -1 or 1:15") from None
    for day in (first, last):
        if day == 0 or not -31 <= day <= 31:
            raise TimeIntervalError(
                f"{path}: {day} is not a day of the month (1 ... 31, or -1 ... -31)"
            )
    if (first > 0) == (last > 0) and first > last:
        raise TimeIntervalError(f"{path}: {text!r} runs backwards; give it start:end")
    return first, last
