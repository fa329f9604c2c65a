"""The status page: pure rendering (escaping, links, refresh), served over HTTP from a
real store, and loaded in headless Chromium (Debian package `chromium`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from relay.domain.alerts import group_alert_id
from relay.durations import format_age_s
from relay.http.status_page import (
    AlertRow,
    SilenceRow,
    SinkRow,
    SourceRow,
    StatusView,
    render_status_page,
)
from relay.matchers import Matcher
from tests.http_rig import START, HttpRig, commit_alerts, http_rig, make_alert
from tests.tools import HEADLESS_CHROMIUM, require_tool

EVIL = '<script>alert("x")</script>&"quoted"'


@dataclass
class Row:
    table: str
    attrs: dict[str, str]
    cells: list[str] = field(default_factory=list)


class PageParser(HTMLParser):
    """Table rows (with their `data-` attributes and cell texts), meta tags, links and
    whether any script element exists."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.metas: list[dict[str, str]] = []
        self.links: list[str] = []
        self.scripts = 0
        self.problems: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_problem = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = values.get("id", "")
        elif tag == "tr" and self._table is not None and "data-" in " ".join(values):
            self.rows.append(Row(self._table, values))
        elif tag == "td" and self.rows and self._table is not None:
            self._cell = []
        elif tag == "meta":
            self.metas.append(values)
        elif tag == "a":
            self.links.append(values.get("href", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag == "p" and values.get("class") == "problem":
            self._in_problem = True
            self.problems.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None:
            self.rows[-1].cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "p":
            self._in_problem = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_problem:
            self.problems[-1] += data

    def table(self, name: str) -> list[Row]:
        return [row for row in self.rows if row.table == name]


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def view(**changes: object) -> StatusView:
    base = StatusView(
        generated_at=START,
        version="9.9.9",
        refresh_s=10,
        sources=[
            SourceRow(
                name="prod",
                state="ok",
                interval_s=15,
                last_success_at=START - timedelta(seconds=4),
                last_attempt_at=START - timedelta(seconds=4),
                lag_s=4,
                running=3,
            )
        ],
        alerts=[
            AlertRow(
                started_at=START,
                rule="execution-failed",
                severity="critical",
                state="firing",
                source="prod",
                summary=EVIL,
                link="https://app.example/executions/1?a=1&b=2",
            )
        ],
        sinks=[SinkRow(name="oncall", type="slack", pending=2, dead=1)],
        silences=[
            SilenceRow(
                id="sil_1",
                matchers=[str(Matcher.equal("rule", EVIL))],
                starts_at=START,
                ends_at=START + timedelta(hours=1),
                creator="ana",
                comment=EVIL,
                origin="api",
            )
        ],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "never"),
        (-3, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m 0s"),
        (3599, "59m 59s"),
        (3600, "1h 0m"),
        (47 * 3600 + 59 * 60, "47h 59m"),
        (48 * 3600, "2d 0h"),
        (10 * 86400 + 5 * 3600, "10d 5h"),
    ],
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert format_age_s(seconds) == text


def test_every_outside_value_is_escaped() -> None:
    html = render_status_page(view())
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&quot;quoted&quot;" in html
    page = parse(html)
    assert page.scripts == 0
    (alert,) = page.table("alerts")
    assert alert.cells[-1] == EVIL  # shown as text, exactly
    (silence,) = page.table("silences")
    assert silence.cells[0] == str(Matcher.equal("rule", EVIL))  # canonical: quoted
    assert "https://app.example/executions/1?a=1&b=2" in page.links


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "//evil", "", None]
)
def test_only_http_links_become_links(link: str | None) -> None:
    alerts = [replace(view().alerts[0], summary="boom", link=link)]
    page = parse(render_status_page(view(alerts=alerts)))
    assert page.links == ["/metrics", "/readyz", "/api/v1/alerts"]
    assert page.table("alerts")[0].cells[-1] == "boom"


def test_the_page_refreshes_itself_and_says_when_sections_are_empty() -> None:
    html = render_status_page(view(alerts=[], silences=[], sinks=[], refresh_s=7))
    page = parse(html)
    assert {"http-equiv": "refresh", "content": "7"} in page.metas
    assert 'id="alerts-empty"' in html
    assert 'id="silences-empty"' in html
    assert "No sinks configured." in html


async def prepare(rig: HttpRig) -> tuple[str, str]:
    """Two polled sources (one unauthorized), two alerts, a dead letter and a runtime
    silence; returns the ids of the firing alert's execution and the silence."""
    rig.mark_polled("prod", running=7)
    staging = rig.health["staging"]
    staging.unauthorized = True
    staging.consecutive_failures = 2
    staging.last_error = "the Zaia API refused the key; check sources.1.api_key"
    rig.clock.advance(seconds=20)
    firing = make_alert(1, at=rig.clock(), summary=f"Agent run failed {EVIL}")
    await commit_alerts(rig.store, [firing], at=rig.clock(), sinks=("oncall", "finops"))
    resolved = replace(
        make_alert(2, rule="credit-burn", severity="warning", at=rig.clock()),
        id=group_alert_id(rule="credit-burn", source="prod", group_key="", episode=1),
        state="resolved",
        execution=None,
        summary="Credit burn back under 10000 in 1h",
    )
    rig.clock.advance(seconds=1)
    await commit_alerts(rig.store, [resolved], at=rig.clock(), sinks=("finops",))
    (item,) = await rig.store.claim_due("oncall", now=rig.clock(), limit=5, lease_s=30)
    await rig.store.mark_dead("oncall", item.notification.id, reason="HTTP 404", now=rig.clock())
    response = await rig.client.post(
        "/api/v1/silences",
        json={"matchers": {"responder_id": "resp-9"}, "duration": "1h", "comment": "migration"},
        headers=rig.admin,
    )
    assert response.status_code == 201, response.text
    return "exec-0001", response.json()["id"]


def check_page(page: PageParser, *, silence_id: str) -> None:
    sources = {row.attrs["data-source"]: row for row in page.table("sources")}
    assert list(sources) == ["prod", "staging"]
    assert sources["prod"].attrs["data-state"] == "ok"
    assert sources["prod"].cells[2] == "2026-03-02 09:00:00Z"  # last successful poll
    assert sources["prod"].cells[3] == "21s"  # lag
    assert sources["prod"].cells[4] == "7"  # running
    assert sources["staging"].attrs["data-state"] == "unauthorized"
    assert "refused the key" in sources["staging"].cells[0]
    assert sources["staging"].cells[2] == "never"

    alerts = page.table("alerts")
    # Firing first, though the resolved one is newer.
    assert [(a.attrs["data-rule"], a.attrs["data-state"]) for a in alerts] == [
        ("execution-failed", "firing"),
        ("credit-burn", "resolved"),
    ]
    assert alerts[0].cells[-1] == f"Agent run failed {EVIL}"
    assert page.scripts == 0

    sinks = {row.attrs["data-sink"]: row.attrs for row in page.table("sinks")}
    assert sinks["oncall"]["data-pending"] == "0"
    assert sinks["oncall"]["data-dead"] == "1"
    assert sinks["finops"]["data-pending"] == "2"
    assert sinks["finops"]["data-dead"] == "0"

    silences = {row.attrs["data-silence"]: row for row in page.table("silences")}
    origins = sorted(row.attrs["data-origin"] for row in silences.values())
    assert origins == ["api", "config"]
    assert silences[silence_id].cells[0] == 'responder_id="resp-9"'
    assert silences[silence_id].cells[4] == "migration"
    assert any(row.cells[4] == "finance freeze <b>week</b>" for row in silences.values())
    assert {"http-equiv": "refresh", "content": "10"} in page.metas


async def test_the_served_page_shows_sources_alerts_sinks_and_silences(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        _, silence_id = await prepare(rig)
        response = await rig.client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page = parse(response.text)
        check_page(page, silence_id=silence_id)
        assert page.problems == []


async def test_the_page_still_renders_with_the_store_down(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        rig.mark_polled("prod", running=2)
        await rig.store.close()
        response = await rig.client.get("/")
        assert response.status_code == 200
        page = parse(response.text)
        assert [row.attrs["data-source"] for row in page.table("sources")] == ["prod", "staging"]
        assert len(page.problems) == 1
        assert page.problems[0].startswith("the store did not answer")
        sinks = {row.attrs["data-sink"]: row.attrs for row in page.table("sinks")}
        assert sinks["oncall"]["data-pending"] == ""  # unknown, not zero
        # Config silences need no store.
        assert [row.attrs["data-origin"] for row in page.table("silences")] == ["config"]


async def load_in_chromium(chromium: str, url: str, *, profile: Path) -> tuple[str, str]:
    """The DOM headless Chromium built from `url`, and its log (console messages
    included, as `INFO:CONSOLE` lines)."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        *HEADLESS_CHROMIUM,
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        "--dump-dom",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        dom, errors = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = errors.decode(errors="replace")
    assert process.returncode == 0, log[-3000:]
    return dom.decode(), log


async def test_headless_chromium_shows_the_status_page(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    async with http_rig(tmp_path) as rig:
        _, silence_id = await prepare(rig)
        html, log = await load_in_chromium(
            chromium, f"{rig.server.url}/", profile=tmp_path / "chromium"
        )
        page = parse(html)
        alert_id = page.table("alerts")[0].attrs["data-alert"]
        alert_html, alert_log = await load_in_chromium(
            chromium, f"{rig.server.url}/alerts/{alert_id}", profile=tmp_path / "chromium"
        )
    assert html.lstrip().lower().startswith("<!doctype html>"), html[:500]
    assert "zaia-relay status" in html
    check_page(page, silence_id=silence_id)
    assert page.problems == []
    assert 'id="stats-hour-empty"' in html
    # The alert's page renders, without a console message (no script, nothing refused).
    assert alert_html.lstrip().lower().startswith("<!doctype html>"), alert_html[:500]
    alert_page = parse(alert_html)
    assert alert_page.scripts == 0
    assert {row.attrs["data-sink"] for row in alert_page.table("notifications")} == {
        "oncall",
        "finops",
    }
    assert f"Agent run failed {EVIL}" in unescape(alert_html)
    assert "<script>" not in alert_html
    assert ":CONSOLE" not in log, log[-3000:]
    assert ":CONSOLE" not in alert_log, alert_log[-3000:]


@pytest.mark.parametrize(
    ("mode", "rate", "budget", "staleness_s", "spend", "unread"),
    [
        ("adaptive", 30.0, 60.0, 42.0, "30 / 60", "42s"),
        ("adaptive", None, 60.0, 0.0, "60 / 60", "0s"),
        ("fixed", None, None, 0.0, "no ceiling", "0s"),
    ],
)
def test_each_source_shows_how_it_polls_what_it_spends_and_how_far_behind_it_is(
    mode: str,
    rate: float | None,
    budget: float | None,
    staleness_s: float,
    spend: str,
    unread: str,
) -> None:
    source = replace(
        view().sources[0],
        mode=mode,
        rate_per_minute=rate,
        budget_per_minute=budget,
        staleness_s=staleness_s,
    )
    (row,) = parse(render_status_page(view(sources=[source]))).table("sources")
    assert row.cells[6:9] == [mode, spend, unread]


async def test_alerts_show_the_responder_by_name_and_link_the_runbook(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        named = replace(
            make_alert(1, at=rig.clock(), summary="Sales Qualifier agent failed"),
            labels={"responder_id": "resp-1", "responder": "Sales Qualifier"},
            annotations={"runbook_url": "https://wiki.example/runbook?a=1&b=2"},
        )
        unnamed = replace(
            make_alert(2, at=rig.clock()), annotations={"runbook_url": "javascript:alert(1)"}
        )
        await commit_alerts(rig.store, [named, unnamed], at=rig.clock())
        page = parse((await rig.client.get("/")).text)
    rows = {row.cells[-1]: row for row in page.table("alerts")}  # by summary
    assert rows["Sales Qualifier agent failed · runbook"].cells[-2] == "Sales Qualifier"
    # No name configured: the id; an unsafe runbook URL is no link.
    assert rows["Agent execution exec-0002 failed"].cells[-2] == "resp-1"
    assert "https://wiki.example/runbook?a=1&b=2" in page.links
    assert not any(link.startswith("javascript") for link in page.links)
