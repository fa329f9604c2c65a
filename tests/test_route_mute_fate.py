"""A muted firing decides the rest of its alert, per sink: what follows a firing held
back is held back too (never a replay), and a firing sent is always resolved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.alerts import Alert, MutedRoute
from relay.domain.dispatch import notifications_for
from relay.domain.routes import Route, matching_routes, route_alert, sends
from relay.domain.silences import Silence
from relay.matchers import parse_matchers
from relay.settings import RuleSettings
from relay.time_intervals import time_interval
from relay.vocab import NotificationKind

FRIDAY = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 3, 7, 9, 0, tzinfo=UTC)
MONDAY = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
INTERVALS = {"weekends": time_interval("weekends", weekdays=["saturday", "sunday"])}
PAGE = Route(
    id="page",
    matchers=tuple(parse_matchers('rule="rate"')),
    sinks=("pd",),
    mute_time_intervals=("weekends",),
)
FIRING_HELD = MutedRoute(route="page", sinks=("pd",), reason="in weekends")
RULES = [
    RuleSettings.model_validate(
        {"name": "rate", "severity": "critical", "window": "5m", "when": {"count": {"gt": 1}}}
    )
]


def alert(state: str = "firing", *, muted: tuple[MutedRoute, ...] = ()) -> Alert:
    return Alert(
        id="alert_1",
        rule="rate",
        severity="critical",
        state="resolved" if state == "resolved" else "firing",
        source="prod",
        summary="rate",
        description="",
        started_at=FRIDAY,
        labels={"rule": "rate"},
        muted=muted,
    )


@pytest.mark.parametrize(
    ("kind", "firing_sent", "muted_now", "expected"),
    [
        ("firing", True, False, True),
        ("firing", True, True, False),
        # The firing reached the sink: its reminders only outside a mute, its resolve always.
        ("reminder", True, False, True),
        ("reminder", True, True, False),
        ("resolved", True, False, True),
        ("resolved", True, True, True),
        # The firing was held back there: nothing of the alert follows, muted or not.
        ("reminder", False, False, False),
        ("reminder", False, True, False),
        ("resolved", False, False, False),
        ("resolved", False, True, False),
    ],
)
def test_sends(kind: NotificationKind, firing_sent: bool, muted_now: bool, expected: bool) -> None:
    assert sends(kind, firing_sent=firing_sent, muted_now=muted_now) is expected


@pytest.mark.parametrize(
    ("kind", "now", "firing_muted", "sinks", "muted"),
    [
        # Firing muted on Saturday: Monday's reminder and resolve stay away from pd.
        ("reminder", MONDAY, (FIRING_HELD,), [], "firing held back in weekends"),
        ("resolved", MONDAY, (FIRING_HELD,), [], "firing held back in weekends"),
        ("resolved", SATURDAY, (FIRING_HELD,), [], "firing held back in weekends"),
        # Firing sent on Friday: the reminder in the weekend is muted, the resolve is not.
        ("reminder", SATURDAY, (), [], "in weekends"),
        ("resolved", SATURDAY, (), ["pd"], None),
        ("reminder", MONDAY, (), ["pd"], None),
        ("resolved", MONDAY, (), ["pd"], None),
    ],
)
def test_what_follows_a_firing(
    kind: NotificationKind,
    now: datetime,
    firing_muted: tuple[MutedRoute, ...],
    sinks: list[str],
    muted: str | None,
) -> None:
    routing = route_alert(
        {"rule": "rate"},
        own_sinks=(),
        routes=(PAGE,),
        intervals=INTERVALS,
        now=now,
        kind=kind,
        firing_muted=firing_muted,
    )
    assert routing.sinks == sinks
    expected = () if muted is None else (MutedRoute("page", ("pd",), muted, kind),)
    assert routing.muted == expected


def test_only_the_sinks_whose_firing_was_held_back_miss_what_follows() -> None:
    both = replace(PAGE, sinks=("pd", "chat"))
    held = MutedRoute(route="page", sinks=("pd",), reason="in weekends")  # chat: sent
    routing = route_alert(
        {"rule": "rate"},
        own_sinks=("pd",),  # even a rule's own sink (its config changed since the firing)
        routes=(both,),
        intervals=INTERVALS,
        now=MONDAY,
        kind="resolved",
        firing_muted=(held,),
    )
    assert routing.sinks == ["chat"]
    reason = "firing held back in weekends"
    assert routing.muted == (
        MutedRoute("page", ("pd",), reason, "resolved"),
        MutedRoute("page", ("pd",), reason, "resolved"),
    )


def test_dispatch_reads_the_firing_s_fate_from_the_previous_alert_and_keeps_it() -> None:
    saturday = notifications_for(
        [(alert(), "firing", 0)],
        RULES,
        silences=[],
        now=SATURDAY,
        routes=[PAGE],
        intervals=INTERVALS,
    )
    assert saturday.notifications == []
    [recorded] = saturday.muted
    assert recorded.muted == (FIRING_HELD,)

    monday = notifications_for(
        [(alert("resolved"), "resolved", 0)],
        RULES,
        silences=[],
        now=MONDAY,
        routes=[PAGE],
        intervals=INTERVALS,
        previous={recorded.id: recorded},
    )
    assert monday.notifications == []
    [resolved] = monday.muted
    held = MutedRoute("page", ("pd",), "firing held back in weekends", "resolved")
    assert resolved.muted == (FIRING_HELD, held)
    # Without what was stored, the resolve would go out: `previous` is what prevents it.
    alone = notifications_for(
        [(alert("resolved"), "resolved", 0)],
        RULES,
        silences=[],
        now=MONDAY,
        routes=[PAGE],
        intervals=INTERVALS,
    )
    assert [n.sink for n in alone.notifications] == ["pd"]


def test_a_silenced_reminder_keeps_what_its_firing_held_back() -> None:
    silence = Silence(
        id="sil-1",
        matchers=tuple(parse_matchers('rule="rate"')),
        starts_at=FRIDAY,
        ends_at=MONDAY,
        creator="ops",
        comment="",
        created_at=FRIDAY,
    )
    before = alert(muted=(FIRING_HELD,))
    dispatch = notifications_for(
        [(alert(), "reminder", 1)],
        RULES,
        silences=[silence],
        now=SATURDAY,
        routes=[PAGE],
        intervals=INTERVALS,
        previous={before.id: before},
    )
    [silenced] = dispatch.silenced
    assert (silenced.silenced_by, silenced.muted) == ("sil-1", (FIRING_HELD,))


# --- properties -----------------------------------------------------------------------

_SINKS = st.lists(st.sampled_from(["s1", "s2", "s3"]), max_size=3, unique=True)


@st.composite
def _tree(draw: st.DrawFn) -> tuple[Route, ...]:
    """Up to three routes over every alert, some muted at weekends, some continuing."""
    return tuple(
        Route(
            id=f"routes[{index}]",
            sinks=tuple(draw(_SINKS)),
            mute_time_intervals=("weekends",) if draw(st.booleans()) else (),
            continue_=draw(st.booleans()),
        )
        for index in range(draw(st.integers(min_value=1, max_value=3)))
    )


def _life(
    moments: Sequence[datetime],
    *,
    routes: Sequence[Route],
    rules: Sequence[RuleSettings],
) -> dict[str, list[tuple[NotificationKind, datetime]]]:
    """One alert's firing, reminders and resolve at `moments`, through dispatch as the
    planner does it (the recorded alert is the next one's `previous`): what each sink
    got, and when."""
    got: dict[str, list[tuple[NotificationKind, datetime]]] = {}
    stored: Mapping[str, Alert] = {}
    last = len(moments) - 1
    for step, now in enumerate(moments):
        kind: NotificationKind = (
            "firing" if step == 0 else "resolved" if step == last else "reminder"
        )
        current = alert("resolved" if kind == "resolved" else "firing")
        dispatch = notifications_for(
            [(current, kind, step)],
            rules,
            silences=[],
            now=now,
            routes=routes,
            intervals=INTERVALS,
            previous=stored,
        )
        for notification in dispatch.notifications:
            got.setdefault(notification.sink, []).append((notification.kind, now))
        recorded = next(iter(dispatch.muted), current)
        stored = {recorded.id: recorded}
    return got


@given(
    _tree(),
    _SINKS,
    st.lists(st.sampled_from([FRIDAY, SATURDAY, MONDAY]), min_size=2, max_size=6),
)
def test_a_sink_hears_the_rest_of_an_alert_iff_it_heard_its_firing(
    routes: tuple[Route, ...], own: list[str], moments: list[datetime]
) -> None:
    rules = [RULES[0].model_copy(update={"sinks": own})]
    got = _life(moments, routes=routes, rules=rules)
    taken = matching_routes(routes, {"rule": "rate"})
    open_ways = set(own).union(*(r.sinks for r in taken if not r.mute_time_intervals))
    every_way = set(own).union(*(r.sinks for r in taken))
    fired_to = open_ways if moments[0] == SATURDAY else every_way
    assert set(got) == fired_to  # the firing, judged by its moment's mutes
    for sink, heard in got.items():
        kinds = [kind for kind, _ in heard]
        # Never a reminder or a resolve without the firing, and a firing received is
        # always resolved, exactly once, muted or not.
        assert kinds[0] == "firing", (sink, kinds)
        assert kinds[-1] == "resolved", (sink, kinds)
        assert kinds.count("firing") == kinds.count("resolved") == 1, (sink, kinds)
        # A reminder inside the mute only where an unmuted way leads.
        for kind, now in heard:
            if kind == "reminder" and now == SATURDAY:
                assert sink in open_ways
