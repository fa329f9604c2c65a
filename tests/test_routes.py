"""Routing: which routes an alert's labels take, the sinks they reach, groups and mutes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.alerts import MutedRoute, route_group_key
from relay.domain.routes import (
    Route,
    matching_routes,
    mute_reason,
    muted_until,
    route_alert,
    routes_of,
)
from relay.matchers import parse_matchers
from relay.settings import RouteSettings
from relay.time_intervals import time_interval

# Tuesday 1 December 2026, 10:00 UTC; Saturday 5 December.
WEEKDAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
INTERVALS = {
    "weekends": time_interval("weekends", weekdays=["saturday", "sunday"]),
    "office": time_interval("office", weekdays=["monday:friday"], times=[("09:00", "18:00")]),
}


def route(route_id: str, matchers: str | None = None, **fields: object) -> Route:
    parsed = tuple(parse_matchers(matchers)) if matchers else ()
    return replace(Route(id=route_id, matchers=parsed), **fields)  # type: ignore[arg-type]


PAGE = route(
    "page",
    'severity="critical", team=~"pay.*"',
    sinks=("pagerduty", "payments"),
    group_by=("responder_id",),
    group_wait_s=10.0,
)
DEFAULT = route("default", sinks=("alerts",))
TREE = (PAGE, DEFAULT)


@pytest.mark.parametrize(
    ("labels", "taken"),
    [
        ({"severity": "critical", "team": "payments"}, ["page"]),
        ({"severity": "critical", "team": "repay"}, ["default"]),  # anchored regex
        ({"severity": "warning", "team": "payments"}, ["default"]),
        ({"severity": "critical"}, ["default"]),  # no team: "" does not match pay.*
        ({}, ["default"]),
    ],
)
def test_the_first_matching_route_wins(labels: dict[str, str], taken: list[str]) -> None:
    assert [r.id for r in matching_routes(TREE, labels)] == taken


def test_continue_tries_the_next_routes_too() -> None:
    audit = route("audit", sinks=("audit",), continue_=True)
    tree = (audit, PAGE, DEFAULT)
    labels = {"severity": "critical", "team": "payments"}
    assert [r.id for r in matching_routes(tree, labels)] == ["audit", "page"]
    assert [r.id for r in matching_routes(tree, {"severity": "info"})] == ["audit", "default"]


def test_order_matters() -> None:
    labels = {"severity": "critical", "team": "payments"}
    assert [r.id for r in matching_routes((DEFAULT, PAGE), labels)] == ["default"]


def test_a_critical_payments_alert_reaches_pagerduty_and_payments_grouped() -> None:
    labels = {"severity": "critical", "team": "payments", "responder_id": "r-1"}
    routing = route_alert(labels, own_sinks=(), routes=TREE, intervals=INTERVALS, now=WEEKDAY)
    assert routing.sinks == ["pagerduty", "payments"]
    group = routing.destinations[0].group
    assert group is not None
    assert group.key == route_group_key(route="page", values={"responder_id": "r-1"})
    assert (group.wait_s, group.route, dict(group.values)) == (
        10.0,
        "page",
        {"responder_id": "r-1"},
    )
    assert routing.muted == ()


def test_a_missing_group_label_counts_as_empty() -> None:
    labels = {"severity": "critical", "team": "payments"}
    routing = route_alert(labels, own_sinks=(), routes=TREE, intervals=INTERVALS, now=WEEKDAY)
    group = routing.destinations[0].group
    assert group is not None
    assert dict(group.values) == {"responder_id": ""}


def test_the_rule_s_own_sinks_come_first_ungrouped_and_once() -> None:
    labels = {"severity": "critical", "team": "payments"}
    routing = route_alert(
        labels, own_sinks=("payments", "oncall"), routes=TREE, intervals=INTERVALS, now=WEEKDAY
    )
    assert routing.sinks == ["payments", "oncall", "pagerduty"]
    assert [d.group is None for d in routing.destinations] == [True, True, False]
    assert [d.route for d in routing.destinations] == [None, None, "page"]


def test_without_routes_only_the_rule_s_sinks() -> None:
    routing = route_alert({}, own_sinks=("oncall",), routes=(), intervals={}, now=WEEKDAY)
    assert routing.sinks == ["oncall"]
    assert routing.matches == ()


@pytest.mark.parametrize(
    ("fields", "now", "reason"),
    [
        ({"mute_time_intervals": ("weekends",)}, SATURDAY, "in weekends"),
        ({"mute_time_intervals": ("weekends",)}, WEEKDAY, None),
        ({"active_time_intervals": ("office",)}, WEEKDAY, None),
        ({"active_time_intervals": ("office",)}, SATURDAY, "outside office"),
        ({"active_time_intervals": ("office",)}, WEEKDAY.replace(hour=20), "outside office"),
        ({}, SATURDAY, None),
    ],
)
def test_mute_and_active_intervals(
    fields: dict[str, object], now: datetime, reason: str | None
) -> None:
    assert mute_reason(route("r", **fields), intervals=INTERVALS, now=now) == reason


def test_a_muted_route_sends_nothing_and_records_what_it_held_back() -> None:
    muted_page = replace(PAGE, mute_time_intervals=("weekends",))
    labels = {"severity": "critical", "team": "payments"}
    routing = route_alert(
        labels,
        own_sinks=("payments",),
        routes=(muted_page, DEFAULT),
        intervals=INTERVALS,
        now=SATURDAY,
    )
    # Not the default route either: the muted route still caught the alert.
    assert routing.sinks == ["payments"]
    assert routing.muted == (MutedRoute(route="page", sinks=("pagerduty",), reason="in weekends"),)


def test_a_sink_reached_by_another_route_is_not_listed_as_held_back() -> None:
    muted = route("quiet", sinks=("alerts",), mute_time_intervals=("weekends",), continue_=True)
    routing = route_alert(
        {}, own_sinks=(), routes=(muted, DEFAULT), intervals=INTERVALS, now=SATURDAY
    )
    assert routing.sinks == ["alerts"]
    assert routing.muted == ()


def test_muted_until_is_the_end_of_the_interval() -> None:
    muted = route("r", mute_time_intervals=("weekends",))
    assert muted_until(muted, intervals=INTERVALS, now=SATURDAY) == datetime(
        2026, 12, 7, 0, 0, tzinfo=UTC
    )
    assert muted_until(muted, intervals=INTERVALS, now=WEEKDAY) is None


def test_muted_until_reaches_past_a_week_and_across_intervals() -> None:
    feb = {"feb": time_interval("feb", months=["february"], location="Europe/Berlin")}
    only_in_feb = route("r", active_time_intervals=("feb",))
    assert muted_until(only_in_feb, intervals=feb, now=WEEKDAY) == datetime(
        2027, 1, 31, 23, 0, tzinfo=UTC
    )
    # Muted at weekends and outside the office: Monday 09:00 is the first open minute.
    both = route("r", mute_time_intervals=("weekends",), active_time_intervals=("office",))
    assert muted_until(both, intervals=INTERVALS, now=SATURDAY) == datetime(
        2026, 12, 7, 9, 0, tzinfo=UTC
    )
    never = route("r", active_time_intervals=("unknown",))
    assert muted_until(never, intervals=INTERVALS, now=WEEKDAY) is None


def test_routes_from_settings() -> None:
    settings = [
        RouteSettings.model_validate(
            {
                "name": "page",
                "matchers": ['severity="critical"'],
                "sinks": ["a"],
                "group_by": ["team"],
            }
        ),
        RouteSettings.model_validate({"sinks": ["b"], "group_wait": "30s", "continue": True}),
        RouteSettings.model_validate({"sinks": ["c"]}),
    ]
    first, second, third = routes_of(settings)
    assert (first.id, first.group_wait_s, first.group_by) == ("page", 10.0, ("team",))
    assert (second.id, second.group_wait_s, second.continue_) == ("routes[1]", 30.0, True)
    assert (third.id, third.group_wait_s, third.continue_) == ("routes[2]", None, False)
    assert third.group({"team": "x"}) is None


# --- properties -----------------------------------------------------------------------

_VALUES = st.sampled_from(["a", "b", "c", ""])
_LABELS = st.dictionaries(st.sampled_from(["team", "severity", "rule"]), _VALUES, max_size=3)
_MATCHER = st.builds(
    lambda name, op, value: f'{name}{op}"{value}"',
    st.sampled_from(["team", "severity", "rule"]),
    st.sampled_from(["=", "!=", "=~", "!~"]),
    st.sampled_from(["a", "b", "a|b", ".*", ""]),
)
_SINKS = st.lists(st.sampled_from(["s1", "s2", "s3", "s4"]), max_size=3, unique=True)


@st.composite
def _routes(draw: st.DrawFn, *, allow_continue: bool) -> tuple[Route, ...]:
    count = draw(st.integers(min_value=0, max_value=5))
    built = []
    for index in range(count):
        texts = draw(st.lists(_MATCHER, max_size=3))
        built.append(
            Route(
                id=f"routes[{index}]",
                matchers=tuple(m for text in texts for m in parse_matchers(text)),
                sinks=tuple(draw(_SINKS)),
                group_wait_s=draw(st.sampled_from([None, 5.0])),
                mute_time_intervals=tuple(draw(st.lists(st.just("weekends"), max_size=1))),
                continue_=allow_continue and draw(st.booleans()),
            )
        )
    return tuple(built)


@given(_routes(allow_continue=False), _LABELS)
def test_without_continue_at_most_one_route_matches(
    routes: tuple[Route, ...], labels: dict[str, str]
) -> None:
    taken = matching_routes(routes, labels)
    assert len(taken) <= 1
    if taken:  # and it is the first that matches
        assert taken[0] == next(r for r in routes if r.matches(labels))


@given(_routes(allow_continue=True), _LABELS, _SINKS, st.sampled_from([WEEKDAY, SATURDAY]))
def test_each_sink_is_reached_once_and_nothing_muted_is_sent(
    routes: tuple[Route, ...], labels: dict[str, str], own: list[str], now: datetime
) -> None:
    routing = route_alert(labels, own_sinks=own, routes=routes, intervals=INTERVALS, now=now)
    sinks = routing.sinks
    assert len(sinks) == len(set(sinks))
    assert sinks[: len(own)] == own  # the rule's own sinks always, first
    sending = [m for m in routing.matches if m.muted_by is None]
    assert set(sinks) == set(own).union(*(m.route.sinks for m in sending))
    for muted in routing.muted:
        assert not set(muted.sinks) & set(sinks)
    if now == WEEKDAY:
        assert routing.muted == ()
