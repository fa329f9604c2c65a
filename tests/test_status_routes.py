"""The status page's Routes section and muted alerts, rendered and served."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from relay.domain.alerts import MutedRoute
from relay.http.status_page import RouteRow, render_status_page
from tests.http_rig import commit_alerts, http_rig, make_alert
from tests.test_status_page import EVIL, parse, view

# START of the rig is Monday 2 March 2026, 09:00 UTC.
ROUTES = {
    "time_intervals": [
        {
            "name": "office",
            "weekdays": ["monday:friday"],
            "times": [{"start": "10:00", "end": "18:00"}],
        },
        {"name": "weekends", "weekdays": ["saturday", "sunday"]},
    ],
    "routes": [
        {
            "name": "payments-page",
            "matchers": ['severity="critical"', 'team=~"pay.*"'],
            "sinks": ["oncall"],
            "group_by": ["responder_id"],
            "mute_time_intervals": ["weekends"],
        },
        {
            "name": "office-only",
            "sinks": ["finops"],
            "active_time_intervals": ["office"],
            "continue": True,
        },
        {"sinks": ["finops"]},
    ],
}


def test_routes_render_with_matchers_sinks_grouping_and_mutes_escaped() -> None:
    rows = [
        RouteRow(
            id=EVIL,
            matchers=(f'team="{EVIL}"',),
            sinks=("oncall",),
            group_by=("responder_id",),
            group_wait_s=10.0,
            mute_time_intervals=("weekends",),
            muted_by="in weekends",
            muted_until=datetime(2026, 3, 9, tzinfo=UTC),
        ),
        RouteRow(id="routes[1]", matchers=(), sinks=("finops",), continues=True),
    ]
    html = render_status_page(view(routes=rows))
    assert "<script>" not in html
    page = parse(html)
    first, second = page.table("routes")
    assert (first.attrs["data-muted"], second.attrs["data-muted"]) == ("true", "false")
    assert first.cells[2] == "oncall"
    assert first.cells[3] == "by responder_id, wait 10s"
    assert first.cells[4] == "muted in weekends"
    assert first.cells[5] == "muted in weekends until 2026-03-09 00:00:00Z"
    assert second.cells[0] == "routes[1] (continue)"
    assert second.cells[1] == "every alert"
    assert second.cells[3] == "one message per alert"
    assert second.cells[5] == "sending"


def test_without_routes_the_section_says_so() -> None:
    assert 'id="routes-empty"' in render_status_page(view())


async def test_the_served_page_shows_which_routes_are_muted_now(tmp_path: Path) -> None:
    async with http_rig(tmp_path, more=ROUTES) as rig:
        muted = replace(
            make_alert(1, at=rig.clock()),
            muted=(
                MutedRoute(route="office-only", sinks=("finops",), reason="outside office"),
                MutedRoute(
                    route="office-only",
                    sinks=("finops",),
                    reason="firing held back outside office",
                    kind="resolved",
                ),
            ),
        )
        await commit_alerts(rig.store, [muted, make_alert(2, at=rig.clock())], at=rig.clock())
        page = parse((await rig.client.get("/")).text)
        routes = {row.attrs["data-route"]: row for row in page.table("routes")}
        assert list(routes) == ["payments-page", "office-only", "routes[2]"]
        assert routes["payments-page"].attrs["data-muted"] == "false"
        office = routes["office-only"]
        assert office.attrs["data-muted"] == "true"  # 09:00 is before the office opens
        assert office.cells[5] == "muted outside office until 2026-03-02 10:00:00Z"
        assert routes["routes[2]"].cells[5] == "sending"
        alerts = page.table("alerts")
        assert sorted(a.attrs["data-muted"] for a in alerts) == ["false", "true"]
        (shown,) = [a for a in alerts if a.attrs["data-muted"] == "true"]
        assert "office-only (outside office)" in shown.cells[3]
        assert "office-only (resolved: firing held back outside office)" in shown.cells[3]

        rig.clock.advance(seconds=3600)  # 10:00: the office route sends again
        page = parse((await rig.client.get("/")).text)
        routes = {row.attrs["data-route"]: row for row in page.table("routes")}
        assert routes["office-only"].attrs["data-muted"] == "false"
