"""The status page at `/`: one server-rendered HTML document, no JavaScript, no assets.

Invariants:
- Pure: `render_status_page(view)` turns a `StatusView` into text; gathering the data
  (store, poller health) happens in `relay.http.status_data`.
- Every value that came from outside (names, summaries, errors, matchers) goes through
  `relay.http.html.esc`; a link is only rendered when it is http(s), so no value can inject
  markup or script.
- The page refreshes itself with `<meta http-equiv="refresh">` and reads fine without
  JavaScript, CSS or images; tables carry `id`s and `data-` attributes so tests (and
  scrapers) find rows without parsing prose.
- For a signed-in operator (`StatusView.csrf`), silences get an Expire button and dead
  letters Replay buttons (`relay.http.page_forms`); signed out, "sign in to act".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from relay.durations import format_age_s, format_rough_s
from relay.http.html import STYLE, alert_path, badge, esc, safe_link, table, time_html
from relay.http.page_forms import (
    DeadLetterRow,
    dead_letters_section,
    expire_form,
    flash_line,
    operator_bar,
    replay_all_form,
)
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
    # The most recent dead letters; and for acting (`relay.http.page_forms`): the
    # signed-in operator's CSRF token (None: signed out), whether signing in is possible
    # (an admin token is configured), and the flash code an action left in the query.
    dead_letters: Sequence[DeadLetterRow] = field(default=())
    csrf: str | None = None
    signin_enabled: bool = False
    flash: str | None = None


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
_SILENCE_COLUMNS = (
    "Matchers",
    "Starts",
    "Ends",
    "Creator",
    "Comment",
    "Origin",
    "Recurring",
    "",
)


def _rate(per_minute: float | None) -> str:
    return "" if per_minute is None else f"{per_minute:g}"


def _spend(row: SourceRow) -> str:
    if row.budget_per_minute is None:
        return "no ceiling"
    in_use = row.budget_per_minute if row.rate_per_minute is None else row.rate_per_minute
    return f"{in_use:.0f} / {row.budget_per_minute:.0f}"


def _sources(view: StatusView) -> str:
    if not view.sources:
        return '<p class="muted">No sources configured.</p>'
    rows = []
    for s in view.sources:
        error = f'<div class="muted">{esc(s.last_error)}</div>' if s.last_error else ""
        rows.append(
            f'<tr data-source="{esc(s.name)}" data-state="{esc(s.state)}">'
            f"<td><strong>{esc(s.name)}</strong>{error}</td>"
            f"<td>{badge(s.state)}</td>"
            f"<td>{time_html(s.last_success_at)}</td>"
            f'<td data-lag-s="{"" if s.lag_s is None else f"{s.lag_s:.0f}"}">'
            f"{esc(format_age_s(s.lag_s))}</td>"
            f'<td data-running="{s.running}">{s.running}</td>'
            f"<td>{esc(format_age_s(s.interval_s))}</td>"
            f'<td data-mode="{esc(s.mode)}">{esc(s.mode)}</td>'
            f'<td data-rate="{_rate(s.rate_per_minute)}"'
            f' data-budget="{_rate(s.budget_per_minute)}">{esc(_spend(s))}</td>'
            f'<td data-staleness-s="{s.staleness_s:.0f}">{esc(format_age_s(s.staleness_s))}</td>'
            "</tr>"
        )
    return table("sources", _SOURCE_COLUMNS, rows)


def _alerts(view: StatusView) -> str:
    if not view.alerts:
        return '<p class="muted" id="alerts-empty">No alerts yet.</p>'
    rows = []
    for a in view.alerts:
        link = safe_link(a.link)
        summary = esc(a.summary)
        if link:
            summary = f'<a href="{esc(link)}" rel="noopener noreferrer">{summary}</a>'
        runbook = safe_link(a.runbook)
        if runbook:
            summary += f' · <a href="{esc(runbook)}" rel="noopener noreferrer">runbook</a>'
        state = badge(a.state)
        if a.silenced_by:
            state += f" {badge('silenced')}"
        if a.muted:
            muted = "; ".join(a.muted)
            state += f' <span class="badge quiet" title="{esc(muted)}">muted</span>'
            state += f'<div class="muted">{esc(muted)}</div>'
        if a.acknowledged:
            state += f' <span class="badge quiet" title="{esc(a.acknowledged)}">acknowledged</span>'
            state += f'<div class="muted">{esc(a.acknowledged)}</div>'
        started = time_html(a.started_at)
        if a.id:
            started = f'<a href="{esc(alert_path(a.id))}">{started}</a>'
        rows.append(
            f'<tr data-rule="{esc(a.rule)}" data-state="{esc(a.state)}"'
            f' data-muted="{"true" if a.muted else "false"}"'
            f' data-acknowledged="{"true" if a.acknowledged else "false"}"'
            f' data-alert="{esc(a.id or "")}">'
            f"<td>{started}</td><td>{esc(a.rule)}</td>"
            f"<td>{badge(a.severity)}</td><td>{state}</td><td>{esc(a.source)}</td>"
            f"<td>{esc(a.responder or '')}</td><td>{summary}</td></tr>"
        )
    columns = ("Started", "Rule", "Severity", "State", "Source", "Responder", "Summary")
    return table("alerts", columns, rows)


def _count(value: int | None, *, dead: bool = False) -> str:
    if value is None:
        return '<span class="muted">?</span>'
    css = ' class="dead"' if dead and value else ""
    return f"<span{css}>{value}</span>"


def _sinks(view: StatusView) -> str:
    if not view.sinks:
        return '<p class="muted">No sinks configured.</p>'
    rows = [
        f'<tr data-sink="{esc(s.name)}" data-pending="{"" if s.pending is None else s.pending}"'
        f' data-dead="{"" if s.dead is None else s.dead}">'
        f"<td><strong>{esc(s.name)}</strong></td><td>{esc(s.type)}</td>"
        f"<td>{_count(s.pending)}</td><td>{_count(s.dead, dead=True)}</td>"
        f"<td>{replay_all_form(s.name, dead=s.dead, csrf=view.csrf)}</td></tr>"
        for s in view.sinks
    ]
    return table("sinks", ("Sink", "Type", "Pending", "Dead letters", ""), rows)


def _silences(view: StatusView) -> str:
    if not view.silences:
        return '<p class="muted" id="silences-empty">No active silences.</p>'
    rows = []
    for s in view.silences:
        matchers = ", ".join(f"<code>{esc(m)}</code>" for m in s.matchers)
        recurring = (
            f"{esc(', '.join(s.recurring))} ({'muting now' if s.muting else 'not now'})"
            if s.recurring
            else ""
        )
        rows.append(
            f'<tr data-silence="{esc(s.id)}" data-origin="{esc(s.origin)}"'
            f' data-muting="{str(s.muting).lower()}">'
            f"<td>{matchers}</td><td>{time_html(s.starts_at)}</td><td>{time_html(s.ends_at)}</td>"
            f"<td>{esc(s.creator)}</td><td>{esc(s.comment)}</td><td>{esc(s.origin)}</td>"
            f"<td>{recurring}</td>"
            f"<td>{expire_form(s.id, origin=s.origin, csrf=view.csrf)}</td></tr>"
        )
    return table("silences", _SILENCE_COLUMNS, rows)


def _codes(values: Sequence[str], *, empty: str) -> str:
    if not values:
        return f'<span class="muted">{esc(empty)}</span>'
    return ", ".join(f"<code>{esc(v)}</code>" for v in values)


def _grouping(row: RouteRow) -> str:
    if row.group_wait_s is None:
        return '<span class="muted">one message per alert</span>'
    by = ", ".join(row.group_by) or "all alerts of the route"
    return f"by {esc(by)}, wait {esc(format_rough_s(row.group_wait_s))}"


def _quiet_hours(row: RouteRow) -> str:
    parts = []
    if row.mute_time_intervals:
        parts.append(f"muted in {_codes(row.mute_time_intervals, empty='')}")
    if row.active_time_intervals:
        parts.append(f"active in {_codes(row.active_time_intervals, empty='')}")
    return "; ".join(parts) or '<span class="muted">always active</span>'


def _route_now(row: RouteRow) -> str:
    if row.muted_by is None:
        return badge("sending")
    until = "" if row.muted_until is None else f" until {time_html(row.muted_until)}"
    return f'<span class="badge quiet">muted</span> {esc(row.muted_by)}{until}'


def _routes(view: StatusView) -> str:
    if not view.routes:
        return '<p class="muted" id="routes-empty">No routes: alerts go to their rules\' sinks.</p>'
    rows = []
    for r in view.routes:
        name = f"<strong>{esc(r.id)}</strong>"
        if r.continues:
            name += ' <span class="muted">(continue)</span>'
        rows.append(
            f'<tr data-route="{esc(r.id)}" data-muted="{"true" if r.muted_by else "false"}">'
            f"<td>{name}</td><td>{_codes(r.matchers, empty='every alert')}</td>"
            f"<td>{_codes(r.sinks, empty='none')}</td><td>{_grouping(r)}</td>"
            f"<td>{_quiet_hours(r)}</td><td>{_route_now(r)}</td></tr>"
        )
    return table("routes", _ROUTE_COLUMNS, rows)


def render_status_page(view: StatusView) -> str:
    problems = "".join(f'<p class="problem">{esc(p)}</p>' for p in view.problems)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{int(view.refresh_s)}{"; url=/" if view.flash else ""}">
<title>zaia-relay status</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>zaia-relay</h1>
<p class="muted">version {esc(view.version)} &middot; generated {time_html(view.generated_at)}
&middot; refreshes every {int(view.refresh_s)}s &middot;
<a href="/metrics">metrics</a> &middot; <a href="/readyz">readiness</a> &middot;
<a href="/api/v1/alerts">alerts API</a></p>
{operator_bar(csrf=view.csrf, signin_enabled=view.signin_enabled)}
{flash_line(view.flash)}
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
<section aria-labelledby="h-dead-letters"><h2 id="h-dead-letters">Dead letters</h2>
{dead_letters_section(view.dead_letters, csrf=view.csrf)}</section>
<section aria-labelledby="h-silences"><h2 id="h-silences">Active silences</h2>
{_silences(view)}</section>
</main>
</body>
</html>
"""
