"""The status page for looking, served from a real store with an injected clock:
execution statistics per source and responder (by configured name), their charts,
the day's figures kept a minute and refreshed in the background, and an alert's own
page at `/alerts/{id}` (its notifications, silence and muted routes; 404; read token)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from relay.domain.alerts import MutedRoute
from relay.domain.silences import config_silences
from relay.http.status_stats import STATS_CACHE
from tests.http_rig import READ_TOKEN, HttpRig, commit_alerts, http_rig, make_alert
from tests.stats_kit import commit_states, ended
from tests.test_status_page import EVIL, PageParser, Row, parse

NAMES = {"resp-1": EVIL, "resp-2": "Support Bot"}


def stats_table(page: PageParser, window: str) -> dict[tuple[str, str], Row]:
    return {
        (row.attrs["data-source"], row.attrs["data-responder"]): row
        for row in page.table(f"stats-{window}")
    }


async def fill(rig: HttpRig) -> None:
    now = rig.clock()
    states = [
        ended(1, at=now - timedelta(minutes=1), duration_s=2.0),
        ended(2, at=now - timedelta(minutes=2), duration_s=4.0, status="failed", credits=3.0),
        ended(3, at=now - timedelta(minutes=50), duration_s=30.0, responder="resp-2"),
        ended(4, at=now - timedelta(hours=5), duration_s=60.0, responder="resp-2", status="failed"),
        ended(5, at=now - timedelta(hours=30), responder="resp-2"),  # older than a day
        ended(6, at=now, source="staging", responder="resp-9", status="running"),
    ]
    await commit_states(rig.store, states, at=now)


async def test_stats_per_source_and_responder_by_name_with_charts(tmp_path: Path) -> None:
    async with http_rig(tmp_path, more={"responders": NAMES}) as rig:
        await fill(rig)
        response = await rig.client.get("/")
    html = response.text
    assert "<script>" not in html
    page = parse(html)
    assert page.scripts == 0
    hour = stats_table(page, "hour")
    assert list(hour) == [("prod", ""), ("prod", "resp-1"), ("prod", "resp-2")]
    total = hour[("prod", "")].attrs
    assert (total["data-executions"], total["data-failed"]) == ("3", "1")
    assert total["data-credits"] == "5"
    assert hour[("prod", "resp-1")].cells[:6] == [
        "prod",
        f"{EVIL} resp-1",  # the configured name, escaped, and the id beside it
        "2",
        "1",
        "50.0%",
        "4.0",
    ]
    assert hour[("prod", "resp-1")].attrs["data-p95-s"] == "4.100"  # the top of [4000, 4100) ms
    assert hour[("prod", "resp-2")].cells[1] == "Support Bot resp-2"
    day = stats_table(page, "day")
    assert day[("prod", "resp-2")].attrs["data-executions"] == "2"  # not the one of 30 h ago
    assert day[("prod", "resp-2")].attrs["data-failed"] == "1"
    assert day[("prod", "")].attrs["data-ratio"] == "0.500000"
    # One chart per row, titled, with one bar group per bucket: 12 for the hour, 24 a day.
    charts = [
        ET.fromstring(part.split("</td>")[0])
        for part in html.split('<td><svg xmlns="http://www.w3.org/2000/svg"')[1:]
        for part in ['<svg xmlns="http://www.w3.org/2000/svg"' + part]
    ]
    assert len(charts) == 6
    ns = "{http://www.w3.org/2000/svg}"
    assert [len(c.findall(f"{ns}g")) for c in charts] == [12, 12, 12, 24, 24, 24]
    title = charts[1].findtext(f"{ns}title")
    assert title == f"prod / {EVIL}, last hour (5-minute bars): 2 executions, 1 failed"


async def test_the_day_is_kept_a_minute_then_refreshed_in_the_background(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        await fill(rig)
        first = parse((await rig.client.get("/")).text)
        assert stats_table(first, "day")[("prod", "")].attrs["data-executions"] == "4"
        rig.clock.advance(seconds=30)
        await commit_states(rig.store, [ended(7, at=rig.clock())], at=rig.clock())
        kept = parse((await rig.client.get("/")).text)
        assert stats_table(kept, "hour")[("prod", "")].attrs["data-executions"] == "4"  # fresh
        assert stats_table(kept, "day")[("prod", "")].attrs["data-executions"] == "4"  # kept
        rig.clock.advance(seconds=31)
        stale = await rig.client.get("/")
        assert stats_table(parse(stale.text), "day")[("prod", "")].attrs["data-executions"] == "4"
        assert "read 1m 1s ago" in stale.text
        assert rig.app is not None
        cache = rig.app[STATS_CACHE]
        refresh = cache.refreshing.get("day")
        assert refresh is not None
        await refresh
        fresh = parse((await rig.client.get("/")).text)
        assert stats_table(fresh, "day")[("prod", "")].attrs["data-executions"] == "5"


async def test_no_executions_and_a_store_that_is_down(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        html = (await rig.client.get("/")).text
        assert 'id="stats-hour-empty"' in html
        assert 'id="stats-day-empty"' in html
        await rig.store.close()
        down = (await rig.client.get("/")).text
    assert 'id="stats-hour-unknown"' in down
    assert 'id="stats-day-unknown"' in down


async def prepare_alert(rig: HttpRig) -> str:
    silence = config_silences(rig.settings.silences, intervals=rig.settings.intervals())[0]
    alert = replace(
        make_alert(1, at=rig.clock(), summary=f"Agent failed {EVIL}", excerpt=EVIL),
        labels={"rule": "execution-failed", "responder": EVIL, "team": '<b>"pay"</b>'},
        annotations={"runbook_url": "https://wiki.example/run?a=1&b=2", "note": EVIL},
        silenced_by=silence.id,
        muted=(MutedRoute(route="weekend-<i>", sinks=("oncall",), reason="in weekends"),),
    )
    await commit_alerts(rig.store, [alert], at=rig.clock(), sinks=("oncall", "finops"))
    (item,) = await rig.store.claim_due("oncall", now=rig.clock(), limit=5, lease_s=30)
    rig.clock.advance(seconds=5)
    await rig.store.mark_dead(
        "oncall", item.notification.id, reason=f"HTTP 500 {EVIL}", now=rig.clock()
    )
    return alert.id


async def test_an_alert_page_shows_the_alert_its_notifications_silence_and_muted_routes(
    tmp_path: Path,
) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await prepare_alert(rig)
        status = parse((await rig.client.get("/")).text)
        response = await rig.client.get(f"/alerts/{alert_id}")
        api = (await rig.client.get(f"/api/v1/alerts/{alert_id}")).json()
        assert 'id="acknowledged-none"' in response.text
        await rig.store.acknowledge_alert(alert_id, by="alice <b>", at=rig.clock(), comment="on it")
        acked = (await rig.client.get(f"/alerts/{alert_id}")).text
    assert '<p id="acknowledged">Acknowledged by alice &lt;b&gt; at 2026-' in acked
    dead_at = {d["sink"]: d["dead_at"] for d in api["deliveries"]}
    assert dead_at == {"oncall": "2026-03-02T09:00:05Z", "finops": None}
    (row,) = status.table("alerts")
    assert row.attrs["data-alert"] == alert_id
    assert f"/alerts/{alert_id}" in status.links
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "<script>" not in html
    page = parse(html)
    assert page.scripts == 0
    labels = {r.attrs["data-key"]: r.cells[1] for r in page.table("labels")}
    assert labels == {"responder": EVIL, "rule": "execution-failed", "team": '<b>"pay"</b>'}
    annotations = {r.attrs["data-key"]: r.cells[1] for r in page.table("annotations")}
    assert annotations["note"] == EVIL
    assert "https://wiki.example/run?a=1&b=2" in page.links  # the runbook
    assert "https://app.zaia.example/executions/exec-0001" in page.links  # the execution
    notifications = {r.attrs["data-sink"]: r for r in page.table("notifications")}
    oncall = notifications["oncall"]
    assert oncall.attrs["data-status"] == "dead"
    assert oncall.attrs["data-attempts"] == "1"
    assert oncall.cells[4] == f"HTTP 500 {EVIL}"
    assert oncall.cells[6] == "2026-03-02 09:00:05Z"  # dead at
    assert notifications["finops"].attrs["data-status"] == "pending"
    assert notifications["finops"].cells[5:] == ["never", "never"]
    (silence,) = page.table("silence")
    assert silence.attrs["data-origin"] == "config"
    assert silence.cells[4] == "finance freeze <b>week</b>"
    (muted,) = page.table("muted")
    assert muted.cells == ["weekend-<i>", "oncall", "in weekends"]
    cause = {r.attrs["data-key"]: r.cells[1] for r in page.table("cause")}
    assert cause["step"] == "search"


async def test_an_unknown_alert_is_a_404_page(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        response = await rig.client.get("/alerts/alert_<script>nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="missing"' in response.text
    assert "<script>" not in response.text
    assert "alert_&lt;script&gt;nope" in response.text


async def test_the_alert_page_needs_the_read_token_when_reads_are_protected(
    tmp_path: Path,
) -> None:
    async with http_rig(tmp_path, server={"read_token": READ_TOKEN}) as rig:
        alert = make_alert(1, at=rig.clock())
        await commit_alerts(rig.store, [alert], at=rig.clock())
        refused = await rig.client.get(f"/alerts/{alert.id}")
        missing = await rig.client.get("/alerts/nope")
        allowed = await rig.client.get(
            f"/alerts/{alert.id}", headers={"Authorization": f"Bearer {READ_TOKEN}"}
        )
    assert refused.status_code == 401
    assert missing.status_code == 401  # no answer tells which ids exist
    assert allowed.status_code == 200
    assert alert.summary in allowed.text
