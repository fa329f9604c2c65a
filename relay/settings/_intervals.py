"""Settings shared by routes and silences: matchers in Alertmanager's syntax and the
named recurring `time_intervals`.

Invariants:
- A `Matchers` value is a list of matchers already parsed (`relay.matchers`); a
  string that cannot be read is refused with the reason, located at its index.
- A `time_intervals` entry is built into a `relay.time_intervals.TimeInterval`
  while validating, so a bad weekday, time or zone names its field
  (`time_intervals.0.weekdays.1: ...`); names are unique.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator, model_validator

from relay.matchers import Matcher
from relay.settings._base import Name, Section, raise_problems
from relay.settings._silences import MatcherProblems, read_matchers
from relay.time_intervals import TimeInterval, TimeIntervalError, time_interval

__all__ = ["Matchers", "TimeIntervalSettings", "TimeRange", "parse_matcher_list"]


def parse_matcher_list(value: Any) -> list[Matcher]:
    """Matchers in any form `read_matchers` takes (strings in Alertmanager's syntax, one
    or several in `{...}`, Alertmanager v2 objects, the old map), or already parsed
    ones; a validation error located at each bad entry."""
    if isinstance(value, list) and all(isinstance(m, Matcher) for m in value):
        return list(value)
    try:
        return list(read_matchers(value, check=False).matchers)
    except MatcherProblems as exc:
        raise_problems(exc.problems, title="Matchers")
        raise  # not reached: raise_problems raised


Matchers = Annotated[
    list[Matcher],
    PlainValidator(parse_matcher_list),
    PlainSerializer(lambda matchers: [str(m) for m in matchers], return_type=list[str]),
]


class TimeRange(Section):
    start: str  # "09:00"
    end: str  # "18:00"; "24:00" ends a day


class TimeIntervalSettings(Section):
    """One named recurring interval: every field given must match (see
    `relay.time_intervals`)."""

    name: Name
    times: list[TimeRange] = Field(default_factory=list)
    weekdays: list[str] = Field(default_factory=list)
    days_of_month: list[str | int] = Field(default_factory=list)
    months: list[str | int] = Field(default_factory=list)
    location: str | None = None

    @model_validator(mode="after")
    def _readable(self) -> TimeIntervalSettings:
        try:
            self.build()
        except TimeIntervalError as exc:
            path, _, message = str(exc).partition(": ")
            raise_problems([(_location(path), message)], title="TimeIntervalSettings")
        return self

    def build(self) -> TimeInterval:
        return time_interval(
            self.name,
            times=[(r.start, r.end) for r in self.times],
            weekdays=self.weekdays,
            days_of_month=self.days_of_month,
            months=self.months,
            location=self.location,
        )


def _location(path: str) -> tuple[str | int, ...]:
    """`times[0].start` as pydantic's location (`times`, 0, `start`)."""
    parts: list[str | int] = []
    for piece in path.replace("]", "").split("."):
        name, _, index = piece.partition("[")
        parts.append(name)
        if index:
            parts.append(int(index))
    return tuple(parts)
