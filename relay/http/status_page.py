"""The status page at `/`: one server-rendered HTML document, no JavaScript, no assets.

Invariants:
- Pure: `render_status_page(view)` turns a `StatusView` into text; gathering the data
  (store, poller health) happens in `relay.http.server`.
- Every value that came from outside (names, summaries, errors, matchers) goes through
  `html.escape`; a link is only rendered when it is http(s), so no value can inject
  markup or script.
- The page refreshes itself with `<meta http-equiv="refresh">` and reads fine without
  JavaScript, CSS or images; tables carry `id`s and `data-` attributes so tests (and
  scrapers) find rows without parsing prose.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from relay.durations import format_age_s, format_rough_s, utc_iso
from relay.http.stats_view import StatsWindow, render_stats

__all__ = [
    "AlertRow",
    "RouteRow",
    "SilenceRow",
    "SinkRow",
    "SourceRow",
    "SourceState",
    "StatusView",
    "render_status_page",
]

SourceState = Literal["ok", "starting", "stale", "failing", "unauthorized", "standby"]


@dataclass(frozen=True, slots=True)
class SourceRow:
    name: str
    state: SourceState
    interval_s: float
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    lag_s: float | None  # now - last_success_at
    running: int
    last_error: str | None = None
    # How it polls: "fixed" or "adaptive", the request rate it allows itself against its
    # budget (requests a minute; None: no ceiling), and how far behind it is.
    mode: str = "fixed"
    rate_per_minute: float | None = None
    budget_per_minute: float | None = None
    staleness_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AlertRow:
    started_at: datetime
    rule: str
    severity: str
    state: str
    source: str
    summary: str
    link: str | None = None
    silenced_by: str | None = None
    responder: str | None = None  # its configured name, else its id
    runbook: str | None = None  # the rule's `runbook_url`
    muted: tuple[str, ...] = ()  # "route (in weekends)", one per route that held it back
    acknowledged: str | None = None  # "by alice (slack:U1) at 2026-…", None: not acknowledged
    id: str | None = None  # links the row to the alert's page, `/alerts/{id}`


@dataclass(frozen=True, slots=True)
class RouteRow:
    id: str
    matchers: tuple[str, ...]
    sinks: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    group_wait_s: float | None = None  # None: not grouped
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    continues: bool = False
    muted_by: str | None = None  # "in weekends", "outside office-hours"; None: sending
    muted_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SinkRow:
    name: str
    type: str
    pending: int | None  # None when the store could not say
    dead: int | None


@dataclass(frozen=True, slots=True)
class SilenceRow:
    id: str
    matchers: Sequence[str]  # canonical, like team=~"pay.*"
    starts_at: datetime
    ends_at: datetime | None  # None: a recurring silence without an end
    creator: str
    comment: str
    origin: str  # "config" | "api"
    recurring: Sequence[str] = ()  # names of its time intervals; () for a one-off
    muting: bool = True  # False: a recurring silence between its windows


@dataclass(frozen=True, slots=True)
class StatusView:
    generated_at: datetime
    version: str
    refresh_s: int
    sources: Sequence[SourceRow]
    alerts: Sequence[AlertRow]
    sinks: Sequence[SinkRow]
    silences: Sequence[SilenceRow]
    # Sections the page could not fill, with why (a store that does not answer).
    problems: Sequence[str] = field(default=())
    routes: Sequence[RouteRow] = field(default=())
    # Executions per source and responder, last hour and last day (`relay.http.stats_view`).
    stats: Sequence[StatsWindow] = field(default=())


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(moment: datetime | None) -> str:
    if moment is None:
        return '<span class="muted">never</span>'
    text = utc_iso(moment, timespec="seconds", sep=" ")
    return f'<time datetime="{_e(utc_iso(moment))}">{_e(text)}</time>'


def _safe_link(url: str | None) -> str | None:
    if not url:
        return None
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1d2125}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #e3e6ea;vertical-align:top}th{background:#f4f5f7;font-weight:600}
.muted{color:#6b7280}.problem{background:#fdecea;border:1px solid #f5c2c0;padding:.5rem .8rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.85em;
font-weight:600}.ok,.resolved,.sending{background:#e3f4e8;color:#1b6b34}
.starting,.info{background:#e8eefc;color:#2b4c9a}
.stale,.warning,.silenced,.quiet{background:#fff4dc;color:#8a5a00}
.failing,.unauthorized,.critical,.firing{background:#fdecea;color:#a12622}
.dead{color:#a12622;font-weight:600}code{font-size:.95em}
h3{font-size:1rem;margin:1rem 0 .3rem}tr.total td{background:#fafbfc}
"""


def _badge(value: str) -> str:
    return f'<span class="badge {_e(value)}">{_e(value)}</span>'


_SOURCE_COLUMNS = (
    "Source",
    "State",
    "Last successful poll",
    "Lag",
    "Running",
    "Interval",
    "Polling",
    "Requests/min (in use / budget)",
    "Longest unread",
)
_ROUTE_COLUMNS = ("Route", "Matchers", "Sinks", "Grouping", "Quiet hours", "Now")
_SILENCE_COLUMNS = ("Matchers", "Starts", "Ends", "Creator", "Comment", "Origin", "Recurring")


def _rate(per_minute: float | None) -> str:
    return "" if per_minute is None else f"{per_minute:g}"


def _spend(row: SourceRow) -> str:
    if row.budget_per_minute is None:
        return "no ceiling"
    in_use = row.budget_per_minute if row.rate_per_minute is None else row.rate_per_minute
    return f"{in_use:.0f} / {row.budget_per_minute:.0f}"


def _table(table_id: str, headers: Sequence[str], rows: Sequence[str]) -> str:
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return (
        f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _sources(view: StatusView) -> str:
    if not view.sources:
        return '<p class="muted">No sources configured.</p>'
    rows = []
    for s in view.sources:
        error = f'<div class="muted">{_e(s.last_error)}</div>' if s.last_error else ""
        rows.append(
            f'<tr data-source="{_e(s.name)}" data-state="{_e(s.state)}">'
            f"<td><strong>{_e(s.name)}</strong>{error}</td>"
            f"<td>{_badge(s.state)}</td>"
            f"<td>{_time(s.last_success_at)}</td>"
            f'<td data-lag-s="{"" if s.lag_s is None else f"{s.lag_s:.0f}"}">'
            f"{_e(format_age_s(s.lag_s))}</td>"
            f'<td data-running="{s.running}">{s.running}</td>'
            f"<td>{_e(format_age_s(s.interval_s))}</td>"
            f'<td data-mode="{_e(s.mode)}">{_e(s.mode)}</td>'
            f'<td data-rate="{_rate(s.rate_per_minute)}"'
            f' data-budget="{_rate(s.budget_per_minute)}">{_e(_spend(s))}</td>'
            f'<td data-staleness-s="{s.staleness_s:.0f}">{_e(format_age_s(s.staleness_s))}</td>'
            "</tr>"
        )
    return _table("sources", _SOURCE_COLUMNS, rows)


def _alerts(view: StatusView) -> str:
    if not view.alerts:
        return '<p class="muted" id="alerts-empty">No alerts yet.</p>'
    rows = []
    for a in view.alerts:
        link = _safe_link(a.link)
        summary = _e(a.summary)
        if link:
            summary = f'<a href="{_e(link)}" rel="noopener noreferrer">{summary}</a>'
        runbook = _safe_link(a.runbook)
        if runbook:
            summary += f' · <a href="{_e(runbook)}" rel="noopener noreferrer">runbook</a>'
        state = _badge(a.state)
        if a.silenced_by:
            state += f" {_badge('silenced')}"
        if a.muted:
            muted = "; ".join(a.muted)
            state += f' <span class="badge quiet" title="{_e(muted)}">muted</span>'
            state += f'<div class="muted">{_e(muted)}</div>'
        if a.acknowledged:
            state += f' <span class="badge quiet" title="{_e(a.acknowledged)}">acknowledged</span>'
            state += f'<div class="muted">{_e(a.acknowledged)}</div>'
        started = _time(a.started_at)
        if a.id:
            started = f'<a href="/alerts/{_e(quote(a.id, safe=""))}">{started}</a>'
        rows.append(
            f'<tr data-rule="{_e(a.rule)}" data-state="{_e(a.state)}"'
            f' data-muted="{"true" if a.muted else "false"}"'
            f' data-acknowledged="{"true" if a.acknowledged else "false"}"'
            f' data-alert="{_e(a.id or "")}">'
            f"<td>{started}</td><td>{_e(a.rule)}</td>"
            f"<td>{_badge(a.severity)}</td><td>{state}</td><td>{_e(a.source)}</td>"
            f"<td>{_e(a.responder or '')}</td><td>{summary}</td></tr>"
        )
    columns = ("Started", "Rule", "Severity", "State", "Source", "Responder", "Summary")
    return _table("alerts", columns, rows)


def _count(value: int | None, *, dead: bool = False) -> str:
    if value is None:
        return '<span class="muted">?</span>'
    css = ' class="dead"' if dead and value else ""
    return f"<span{css}>{value}</span>"


def _sinks(view: StatusView) -> str:
    if not view.sinks:
        return '<p class="muted">No sinks configured.</p>'
    rows = [
        f'<tr data-sink="{_e(s.name)}" data-pending="{"" if s.pending is None else s.pending}"'
        f' data-dead="{"" if s.dead is None else s.dead}">'
        f"<td><strong>{_e(s.name)}</strong></td><td>{_e(s.type)}</td>"
        f"<td>{_count(s.pending)}</td><td>{_count(s.dead, dead=True)}</td></tr>"
        for s in view.sinks
    ]
    return _table("sinks", ("Sink", "Type", "Pending", "Dead letters"), rows)


def _silences(view: StatusView) -> str:
    if not view.silences:
        return '<p class="muted" id="silences-empty">No active silences.</p>'
    rows = []
    for s in view.silences:
        matchers = ", ".join(f"<code>{_e(m)}</code>" for m in s.matchers)
        recurring = (
            f"{_e(', '.join(s.recurring))} ({'muting now' if s.muting else 'not now'})"
            if s.recurring
            else ""
        )
        rows.append(
            f'<tr data-silence="{_e(s.id)}" data-origin="{_e(s.origin)}"'
            f' data-muting="{str(s.muting).lower()}">'
            f"<td>{matchers}</td><td>{_time(s.starts_at)}</td><td>{_time(s.ends_at)}</td>"
            f"<td>{_e(s.creator)}</td><td>{_e(s.comment)}</td><td>{_e(s.origin)}</td>"
            f"<td>{recurring}</td></tr>"
        )
    return _table("silences", _SILENCE_COLUMNS, rows)


def _codes(values: Sequence[str], *, empty: str) -> str:
    if not values:
        return f'<span class="muted">{_e(empty)}</span>'
    return ", ".join(f"<code>{_e(v)}</code>" for v in values)


def _grouping(row: RouteRow) -> str:
    if row.group_wait_s is None:
        return '<span class="muted">one message per alert</span>'
    by = ", ".join(row.group_by) or "all alerts of the route"
    return f"by {_e(by)}, wait {_e(format_rough_s(row.group_wait_s))}"


def _quiet_hours(row: RouteRow) -> str:
    parts = []
    if row.mute_time_intervals:
        parts.append(f"muted in {_codes(row.mute_time_intervals, empty='')}")
    if row.active_time_intervals:
        parts.append(f"active in {_codes(row.active_time_intervals, empty='')}")
    return "; ".join(parts) or '<span class="muted">always active</span>'


def _route_now(row: RouteRow) -> str:
    if row.muted_by is None:
        return _badge("sending")
    until = "" if row.muted_until is None else f" until {_time(row.muted_until)}"
    return f'<span class="badge quiet">muted</span> {_e(row.muted_by)}{until}'


def _routes(view: StatusView) -> str:
    if not view.routes:
        return '<p class="muted" id="routes-empty">No routes: alerts go to their rules\' sinks.</p>'
    rows = []
    for r in view.routes:
        name = f"<strong>{_e(r.id)}</strong>"
        if r.continues:
            name += ' <span class="muted">(continue)</span>'
        rows.append(
            f'<tr data-route="{_e(r.id)}" data-muted="{"true" if r.muted_by else "false"}">'
            f"<td>{name}</td><td>{_codes(r.matchers, empty='every alert')}</td>"
            f"<td>{_codes(r.sinks, empty='none')}</td><td>{_grouping(r)}</td>"
            f"<td>{_quiet_hours(r)}</td><td>{_route_now(r)}</td></tr>"
        )
    return _table("routes", _ROUTE_COLUMNS, rows)


def render_status_page(view: StatusView) -> str:
    problems = "".join(f'<p class="problem">{_e(p)}</p>' for p in view.problems)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(view.refresh_s)}">
<title>zaia-relay status</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>zaia-relay</h1>
<p class="muted">version {_e(view.version)} &middot; generated {_time(view.generated_at)}
&middot; refreshes every {int(view.refresh_s)}s &middot;
<a href="/metrics">metrics</a> &middot; <a href="/readyz">readiness</a> &middot;
<a href="/api/v1/alerts">alerts API</a></p>
</header>
<main>
{problems}
<section aria-labelledby="h-sources"><h2 id="h-sources">Sources</h2>
{_sources(view)}</section>
<section aria-labelledby="h-stats"><h2 id="h-stats">Executions</h2>
{render_stats(view.stats)}</section>
<section aria-labelledby="h-alerts"><h2 id="h-alerts">Alerts (firing first, then recent)</h2>
{_alerts(view)}</section>
<section aria-labelledby="h-routes"><h2 id="h-routes">Routes</h2>
{_routes(view)}</section>
<section aria-labelledby="h-sinks"><h2 id="h-sinks">Sinks</h2>
{_sinks(view)}</section>
<section aria-labelledby="h-silences"><h2 id="h-silences">Active silences</h2>
{_silences(view)}</section>
</main>
</body>
</html>
"""
