"""What the status page shows, read from the pollers' health and the store.

Invariants:
- Reading only: nothing here writes to the store.
- A store that fails or does not answer within the context's timeout leaves its
  sections marked unknown (counts `None`) with a problem line; the page itself, the
  sources and the config silences still render.
- Rendering (and escaping) is `relay.http.status_page`'s job; this module hands it plain rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from relay import __version__
from relay.domain.acks import Acknowledgement
from relay.domain.alerts import MutedRoute
from relay.domain.routes import mute_reason, muted_until, routes_of
from relay.domain.silences import active, in_force
from relay.durations import utc_iso
from relay.errors import StoreError
from relay.http.common import CONTEXT, HttpContext, html_response, source_state
from relay.http.page_forms import DeadLetterRow
from relay.http.signin import page_csrf
from relay.http.status_page import (
    AlertRow,
    RouteRow,
    SilenceRow,
    SinkRow,
    SourceRow,
    StatusView,
    render_status_page,
)
from relay.http.status_stats import STATS_CACHE, StatsCache, gather_stats, unknown_windows
from relay.matchers import canonical
from relay.vocab import RUNBOOK_ANNOTATION

if TYPE_CHECKING:
    from relay.store import DeadLetter, OutboxCounts

__all__ = ["collect_silence_rows", "gather_status", "route_rows", "source_order", "status_page"]

_RECENT_ALERTS = 25


def source_order(context: HttpContext) -> list[str]:
    configured = [s.name for s in context.settings.sources if s.name in context.health]
    return configured + sorted(set(context.health) - set(configured))


def acknowledged_text(ack: Acknowledgement | None) -> str | None:
    """`by alice (slack:U1) at 2026-03-01 12:00:00Z: on it`, or None."""
    if ack is None:
        return None
    text = f"by {ack.by} at {utc_iso(ack.at, timespec='seconds', sep=' ')}"
    return f"{text}: {ack.comment}" if ack.comment else text


async def status_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    view = await gather_status(context, cache=request.app[STATS_CACHE])
    view = dataclasses.replace(
        view,
        csrf=page_csrf(request),
        signin_enabled=context.admin_token is not None,
        flash=request.query.get("flash"),
    )
    return html_response(render_status_page(view))


async def gather_status(context: HttpContext, *, cache: StatsCache | None = None) -> StatusView:
    """What the status page shows; a store that fails leaves its sections marked
    unknown and a problem line, never a broken page. Alerts: the firing ones first
    (newest first), then the most recent others."""
    now = context.now()
    problems: list[str] = []

    sources = []
    for name in source_order(context):
        health = context.health[name]
        lag = None if health.last_success_at is None else (now - health.last_success_at)
        sources.append(
            SourceRow(
                name=name,
                state=source_state(health, now=now),
                interval_s=health.interval_s,
                last_success_at=health.last_success_at,
                last_attempt_at=health.last_attempt_at,
                lag_s=None if lag is None else lag.total_seconds(),
                running=health.running,
                last_error=health.last_error,
                mode=health.mode,
                rate_per_minute=health.rate_per_minute,
                budget_per_minute=health.budget_per_minute,
                staleness_s=health.staleness_s,
            )
        )

    alerts: list[AlertRow] = []
    counts: Mapping[str, OutboxCounts] = {}
    letters: Sequence[DeadLetter] = ()
    store_ok = True
    try:
        async with asyncio.timeout(context.store_timeout_s):
            firing = await context.store.list_alerts(state="firing", limit=_RECENT_ALERTS)
            recent = await context.store.list_alerts(limit=_RECENT_ALERTS)
            counts = await context.store.outbox_counts()
            letters = await context.store.dead_letters(limit=_RECENT_ALERTS)
    except (StoreError, TimeoutError) as exc:
        store_ok = False
        problems.append(f"the store did not answer: {exc or 'timed out'}")
    else:
        shown = {stored.alert.id for stored in firing.alerts}
        others = [s for s in recent.alerts if s.alert.id not in shown]
        for stored in [*firing.alerts, *others]:
            alert = stored.alert
            alerts.append(
                AlertRow(
                    started_at=alert.started_at,
                    rule=alert.rule,
                    severity=alert.severity,
                    state=alert.state,
                    source=alert.source,
                    summary=alert.summary,
                    link=alert.link,
                    silenced_by=alert.silenced_by,
                    responder=alert.responder,
                    runbook=alert.annotations.get(RUNBOOK_ANNOTATION),
                    muted=tuple(_muted_line(m) for m in alert.muted),
                    acknowledged=acknowledged_text(stored.acknowledgement),
                    id=alert.id,
                )
            )

    sinks = []
    targets = context.settings.targets()
    for name, sink in context.settings.sinks.items():
        # One row per delivery target: each URL of an Alertmanager HA pair has its own.
        for target in targets[name]:
            count = counts.get(target)
            pending = (count.pending if count else 0) if store_ok else None
            dead = (count.dead if count else 0) if store_ok else None
            sinks.append(SinkRow(name=target, type=sink.type, pending=pending, dead=dead))
    configured = {target for names in targets.values() for target in names}
    for name in sorted(set(counts) - configured):
        # Rows left for a sink removed from the configuration still deserve attention.
        count = counts[name]
        sinks.append(SinkRow(name=name, type="(removed)", pending=count.pending, dead=count.dead))

    silences, silence_problem = await collect_silence_rows(context, now=now)
    if silence_problem and store_ok:
        problems.append(silence_problem)

    if store_ok:
        stats = await gather_stats(context, cache or StatsCache())
    else:
        stats = unknown_windows("execution statistics are unknown: the store did not answer")
    return StatusView(
        generated_at=now,
        version=__version__,
        refresh_s=context.status_refresh_s,
        sources=sources,
        alerts=alerts,
        sinks=sinks,
        silences=silences,
        problems=problems,
        routes=route_rows(context, now=now),
        stats=stats,
        dead_letters=[_dead_letter_row(letter) for letter in letters],
    )


def _dead_letter_row(letter: DeadLetter) -> DeadLetterRow:
    notification = letter.notification
    return DeadLetterRow(
        id=notification.id,
        sink=notification.sink,
        kind=notification.kind,
        alert_id=notification.alert.id,
        summary=notification.alert.summary,
        attempts=letter.attempts,
        dead_at=letter.dead_at,
        reason=letter.reason,
    )


def _muted_line(muted: MutedRoute) -> str:
    """ "page (in weekends)" for a firing held back; "page (resolved: firing held back in
    weekends)" for what followed it."""
    why = muted.reason if muted.kind == "firing" else f"{muted.kind}: {muted.reason}"
    return f"{muted.route} ({why})"


def route_rows(context: HttpContext, *, now: datetime) -> list[RouteRow]:
    """Each configured route, and whether its time intervals mute it at `now`."""
    intervals = context.settings.intervals()
    return [
        RouteRow(
            id=route.id,
            matchers=tuple(str(m) for m in route.matchers),
            sinks=route.sinks,
            group_by=route.group_by,
            group_wait_s=route.group_wait_s,
            mute_time_intervals=route.mute_time_intervals,
            active_time_intervals=route.active_time_intervals,
            continues=route.continue_,
            muted_by=mute_reason(route, intervals=intervals, now=now),
            muted_until=muted_until(route, intervals=intervals, now=now),
        )
        for route in routes_of(context.settings.routes)
    ]


async def collect_silence_rows(
    context: HttpContext, *, now: datetime
) -> tuple[list[SilenceRow], str | None]:
    """The silences in force at `now` for the status page, config ones included
    (recurring ones also between their windows, marked as not muting); and a problem
    line when the store could not list its own."""
    silences = [s for s in context.config_silences if in_force(s, now)]
    problem: str | None = None
    try:
        async with asyncio.timeout(context.store_timeout_s):
            stored = await context.store.list_silences(now=now)
    except (StoreError, TimeoutError) as exc:
        problem = f"stored silences are unknown: {exc or 'the store timed out'}"
    else:
        silences.extend(s for s in stored if in_force(s, now))
    silences.sort(key=lambda s: (s.ends_at, s.id))
    rows = [
        SilenceRow(
            id=s.id,
            matchers=canonical(s.matchers),
            starts_at=s.starts_at,
            ends_at=None if s.open_ended else s.ends_at,
            creator=s.creator,
            comment=s.comment,
            origin=s.origin,
            recurring=s.recurring,
            muting=active(s, now),
        )
        for s in silences
    ]
    return rows, problem
