"""The `routes:` section: an ordered routing tree, flat as Alertmanager's first level.

Invariants of a valid `routes` list (checked here and in `route_problems`, which works
on plain data so the loader can report it beside other sections' problems):
- every sink a route names is defined under `sinks`; every `mute_time_intervals` /
  `active_time_intervals` name is defined under `time_intervals`;
- `group_by` holds label names, each once; route names are unique;
- no route can never match: none follows a catch-all route (no matchers) that lacks
  `continue: true`, and none has matchers that contradict each other or ask for a
  `rule`, `severity`, `source` or `type` no alert can have.
A route groups when it has `group_by` or `group_wait`: without `group_wait` it waits
`DEFAULT_GROUP_WAIT` (the alerts of one burst arrive within a few poll cycles).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from relay.matchers import LABEL_NAME, Matcher, catches_all, contradiction
from relay.settings._base import (
    Duration,
    Name,
    OneOrMany,
    Section,
    listed_twice,
    raise_problems,
)
from relay.settings._intervals import Matchers, parse_matcher_list
from relay.settings._silences import ALERT_LABEL_VALUES

__all__ = [
    "ALERT_LABEL_VALUES",
    "DEFAULT_GROUP_WAIT",
    "RouteSettings",
    "route_label",
    "route_problems",
]

DEFAULT_GROUP_WAIT = timedelta(seconds=10)

Location = tuple[str | int, ...]


def _label_name(value: str) -> str:
    if not LABEL_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a label name (letters, digits and _, not first a digit)"
        )
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]


class RouteSettings(Section):
    """One route: alerts whose labels satisfy every matcher go to `sinks`."""

    name: Name | None = None
    matchers: Matchers = Field(default_factory=list)  # none: every alert (a default route)
    sinks: Annotated[list[Name], OneOrMany]  # may be empty: matched alerts stop here
    group_by: Annotated[list[LabelName], OneOrMany] = Field(default_factory=list)
    group_wait: Duration | None = None
    mute_time_intervals: Annotated[list[Name], OneOrMany] = Field(default_factory=list)
    active_time_intervals: Annotated[list[Name], OneOrMany] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")

    @property
    def grouped(self) -> bool:
        return bool(self.group_by) or self.group_wait is not None

    @property
    def wait(self) -> timedelta:
        """How long a group collects alerts before its first notification."""
        return DEFAULT_GROUP_WAIT if self.group_wait is None else self.group_wait

    @model_validator(mode="after")
    def _distinct(self) -> RouteSettings:
        problems = listed_twice(self.sinks, "sinks", "sink")
        problems += listed_twice(self.group_by, "group_by", "label")
        for field in ("mute_time_intervals", "active_time_intervals"):
            problems += listed_twice(getattr(self, field), field, "time interval")
        raise_problems(problems, title="RouteSettings")
        return self


def route_label(index: int, name: str | None) -> str:
    """How messages, group keys and pages name a route: its name, else `routes[i]`."""
    return name if name else f"routes[{index}]"


def _names(value: Any) -> list[str]:
    value = [value] if isinstance(value, str) else value
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _matchers(value: Any) -> list[Matcher] | None:
    """The route's matchers from plain data; None when they cannot be read (pydantic
    reports that)."""
    if value is None:
        return []
    try:
        return parse_matcher_list(value)
    except ValueError:
        return None


def route_problems(
    routes: list[tuple[int, Mapping[str, Any]]],
    *,
    sinks: Collection[str],
    intervals: Collection[str],
    rules: Collection[str],
    sources: Collection[str],
) -> list[tuple[Location, str]]:
    """What is wrong between `routes` and the other sections (see the module invariants)."""
    problems: list[tuple[Location, str]] = []
    defined_sinks = ", ".join(sorted(sinks)) or "none (add a `sinks:` section)"
    defined_intervals = ", ".join(sorted(intervals)) or "none (add a `time_intervals:` section)"
    known: dict[str, Collection[str]] = {**ALERT_LABEL_VALUES, "rule": rules, "source": sources}
    catch_all: str | None = None
    seen_names: dict[str, int] = {}
    for index, route in routes:
        where: Location = ("routes", index)
        name = route.get("name")
        if isinstance(name, str):
            if name in seen_names:
                message = f"duplicate route name {name!r} (also routes.{seen_names[name]})"
                problems.append(((*where, "name"), message))
            seen_names.setdefault(name, index)
        unknown = [s for s in _names(route.get("sinks")) if s not in sinks]
        if unknown:
            listed = ", ".join(repr(s) for s in unknown)
            problems.append(
                ((*where, "sinks"), f"unknown sink {listed}; defined sinks: {defined_sinks}")
            )
        for field in ("mute_time_intervals", "active_time_intervals"):
            for position, interval in enumerate(_names(route.get(field))):
                if interval not in intervals:
                    problems.append(
                        (
                            (*where, field, position),
                            f"unknown time interval {interval!r}; defined: {defined_intervals}",
                        )
                    )
        matchers = _matchers(route.get("matchers"))
        if matchers is None:
            continue
        if catch_all is not None:
            problems.append(
                (
                    where,
                    f"can never match: {catch_all} before it matches every alert and has no "
                    "`continue: true` (move this route above it, or let that one continue)",
                )
            )
        else:
            why = contradiction(matchers, known=known)
            if why is not None:
                problems.append(((*where, "matchers"), f"can never match: {why}"))
        if catches_all(matchers) and route.get("continue", route.get("continue_")) is not True:
            named = f" ({name})" if isinstance(name, str) else ""
            catch_all = catch_all or f"routes.{index}{named}"
    return problems
