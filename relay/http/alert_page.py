"""One alert's page at `/alerts/{id}`: the alert (summary, labels, annotations, links,
execution, cause), its notifications per sink, the silence that matched it (or, when
none did, one that matches it now), the routes that muted it and its acknowledgement;
for a signed-in operator, the buttons to silence and acknowledge it
(`relay.http.page_forms`). Server-rendered HTML, no JavaScript;
linked from the status page.

Invariants:
- `render_alert_page` is pure; `alert_page` (the handler) only reads the store.
- Every outside value goes through `relay.http.html.esc`; a link is rendered only when
  it is http(s) (`relay.http.html.safe_link`). Errors of sinks were scrubbed of secrets
  when stored, and every body passes the scrubber again (`relay.http.server`).
- An unknown id is a 404 HTML page; read protection applies as to the status page
  (`relay.http.access`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from relay.domain.alerts import Alert
from relay.domain.silences import Silence, matching_silence
from relay.durations import format_duration_s
from relay.errors import StoreError
from relay.http.common import CONTEXT, HttpContext, html_response
from relay.http.html import STYLE, alert_path, badge, esc, safe_link, table, time_html
from relay.http.page_forms import alert_actions, flash_line, operator_bar
from relay.http.signin import page_csrf
from relay.http.status_data import acknowledged_text
from relay.matchers import canonical
from relay.store import StoredAlert
from relay.vocab import RUNBOOK_ANNOTATION

__all__ = ["AlertView", "alert_page", "render_alert_page", "render_missing_alert"]


@dataclass(frozen=True, slots=True)
class AlertView:
    stored: StoredAlert
    silence: Silence | None = None  # the one `silenced_by` names, when still known
    problem: str | None = None  # why the silence could not be read
    # For acting (`relay.http.page_forms`): the operator's CSRF token (None: signed
    # out), whether signing in is possible, the flash code an action left.
    csrf: str | None = None
    signin_enabled: bool = False
    flash: str | None = None


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<p><a href="/">&larr; status</a></p>
{body}
</body>
</html>
"""


def _pairs(table_id: str, pairs: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    if not items:
        return f'<p class="muted" id="{table_id}-empty">None.</p>'
    rows = [
        f'<tr data-key="{esc(k)}"><td><code>{esc(k)}</code></td><td>{v}</td></tr>' for k, v in items
    ]
    return table(table_id, ("Name", "Value"), rows)


def _value(text: str) -> str:
    """An annotation value: a link when it is an http(s) URL, else text."""
    link = safe_link(text)
    return f'<a href="{esc(link)}" rel="noopener noreferrer">{esc(text)}</a>' if link else esc(text)


def _links(view: AlertView) -> str:
    alert = view.stored.alert
    parts = []
    if link := safe_link(alert.link):
        parts.append(
            f'<a id="execution-link" href="{esc(link)}" rel="noopener noreferrer">execution</a>'
        )
    if runbook := safe_link(alert.annotations.get(RUNBOOK_ANNOTATION)):
        parts.append(
            f'<a id="runbook-link" href="{esc(runbook)}" rel="noopener noreferrer">runbook</a>'
        )
    return f"<p>{' &middot; '.join(parts)}</p>" if parts else ""


def _execution(view: AlertView) -> str:
    facts = view.stored.alert.execution
    if facts is None:
        return ""
    pairs = [
        ("id", esc(facts.id)),
        ("kind", esc(facts.kind)),
        ("status", esc(facts.status)),
        ("responder_id", esc(facts.responder_id)),
        ("agent_id", esc(facts.agent_id or "")),
        ("workflow_id", esc(facts.workflow_id or "")),
        ("parent_id", esc(facts.parent_id or "")),
        ("credits_used", esc(f"{facts.credits_used:g}")),
        ("started_at", time_html(facts.started_at)),
        ("ended_at", time_html(facts.ended_at)),
        ("duration", esc(format_duration_s(facts.duration_s))),
    ]
    return f'<h2 id="h-execution">Execution</h2>{_pairs("execution", pairs)}'


def _cause(view: AlertView) -> str:
    cause = view.stored.alert.cause
    if cause is None:
        return ""
    pairs = [
        (name, esc(value))
        for name, value in (
            ("step", cause.step_label),
            ("step type", cause.step_type),
            ("tool type", cause.tool_type),
            ("node type", cause.node_type),
            ("model", cause.model),
            ("chain", " → ".join(cause.chain) or None),
        )
        if value
    ]
    excerpt = f"<pre>{esc(cause.error_excerpt)}</pre>" if cause.error_excerpt else ""
    return f'<h2 id="h-cause">Cause</h2>{_pairs("cause", pairs)}{excerpt}'


def _notifications(view: AlertView) -> str:
    deliveries = view.stored.deliveries
    if not deliveries:
        return '<p class="muted" id="notifications-empty">No notifications.</p>'
    rows = [
        f'<tr data-sink="{esc(d.sink)}" data-kind="{esc(d.kind)}" data-status="{esc(d.status)}"'
        f' data-attempts="{d.attempts}">'
        f"<td><strong>{esc(d.sink)}</strong></td><td>{esc(d.kind)}</td><td>{badge(d.status)}</td>"
        f"<td>{d.attempts}</td><td>{esc(d.last_error or '')}</td>"
        f"<td>{time_html(d.delivered_at)}</td><td>{time_html(d.dead_at)}</td></tr>"
        for d in deliveries
    ]
    columns = ("Sink", "Kind", "Status", "Attempts", "Last error", "Delivered at", "Dead at")
    return table("notifications", columns, rows)


def _silence(view: AlertView) -> str:
    alert = view.stored.alert
    s = view.silence
    lead = ""
    if alert.silenced_by is None:
        if s is None:
            return '<p class="muted" id="silence-none">No silence matched.</p>'
        # Made after the alert was sent: it holds back what the alert sends next.
        lead = '<p id="silence-now">A silence matches it now:</p>'
    if s is None:
        why = f" ({view.problem})" if view.problem else " (no longer stored)"
        return f'<p id="silence-gone">Silence <code>{esc(alert.silenced_by)}</code>{esc(why)}</p>'
    matchers = ", ".join(f"<code>{esc(m)}</code>" for m in canonical(s.matchers))
    ends = None if s.open_ended else s.ends_at
    row = (
        f'<tr data-silence="{esc(s.id)}" data-origin="{esc(s.origin)}"><td>{matchers}</td>'
        f"<td>{time_html(s.starts_at)}</td><td>{time_html(ends)}</td><td>{esc(s.creator)}</td>"
        f"<td>{esc(s.comment)}</td><td>{esc(s.origin)}</td></tr>"
    )
    columns = ("Matchers", "Starts", "Ends", "Creator", "Comment", "Origin")
    return lead + table("silence", columns, [row])


def _muted(view: AlertView) -> str:
    muted = view.stored.alert.muted
    if not muted:
        return '<p class="muted" id="muted-empty">No route muted it.</p>'
    rows = [
        f'<tr data-route="{esc(m.route)}"><td><strong>{esc(m.route)}</strong></td>'
        f"<td>{', '.join(f'<code>{esc(s)}</code>' for s in m.sinks)}</td>"
        f"<td>{esc(m.reason)}</td></tr>"
        for m in muted
    ]
    return table("muted", ("Route", "Sinks held back", "Why"), rows)


def render_alert_page(view: AlertView) -> str:
    stored = view.stored
    alert = stored.alert
    badges = f"{badge(alert.state)} {badge(alert.severity)}"
    if alert.silenced_by:
        badges += f" {badge('silenced')}"
    facts = [
        ("id", f"<code>{esc(alert.id)}</code>"),
        ("rule", esc(alert.rule)),
        ("source", esc(alert.source)),
        ("responder", esc(alert.responder or "")),
        ("started", time_html(alert.started_at)),
        ("first stored", time_html(stored.created_at)),
        ("last changed", time_html(stored.updated_at)),
    ]
    if alert.ended_at is not None:
        facts.append(("ended", time_html(alert.ended_at)))
    if alert.value is not None:
        facts.append(("value", esc(f"{alert.value:g}")))
    if alert.group:
        facts.append(("group", esc(", ".join(f"{k}={v}" for k, v in alert.group.items()))))
    annotations = {k: _value(v) for k, v in alert.annotations.items()}
    body = f"""<header>
<h1 id="summary">{esc(alert.summary)}</h1>
<p>{badges}</p>
{_links(view)}
{operator_bar(csrf=view.csrf, signin_enabled=view.signin_enabled, here=alert_path(alert.id))}
{flash_line(view.flash)}
{alert_actions(alert.id, csrf=view.csrf, acknowledged=stored.acknowledgement is not None)}
</header>
<main>
<pre id="description">{esc(alert.description)}</pre>
{_pairs("facts", facts)}
<h2 id="h-labels">Labels</h2>
{_pairs("labels", {k: esc(v) for k, v in alert.labels.items()})}
<h2 id="h-annotations">Annotations</h2>
{_pairs("annotations", annotations)}
{_execution(view)}
{_cause(view)}
<h2 id="h-notifications">Notifications</h2>
{_notifications(view)}
<h2 id="h-silence">Silence</h2>
{_silence(view)}
<h2 id="h-muted">Muted routes</h2>
{_muted(view)}
<h2 id="h-acknowledged">Acknowledgement</h2>
{_acknowledgement(view)}
</main>"""
    return _page(f"{alert.summary} - zaia-relay alert", body)


def _acknowledgement(view: AlertView) -> str:
    text = acknowledged_text(view.stored.acknowledgement)
    if text is None:
        return '<p class="muted" id="acknowledged-none">Not acknowledged.</p>'
    return f'<p id="acknowledged">Acknowledged {esc(text)}</p>'


def render_missing_alert(alert_id: str) -> str:
    body = (
        f'<h1 id="missing">No such alert</h1><p>The relay knows no alert '
        f"<code>{esc(alert_id)}</code>: it may have been pruned.</p>"
    )
    return _page("No such alert - zaia-relay", body)


async def alert_page(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    alert_id = request.match_info["id"]
    async with asyncio.timeout(context.store_timeout_s):
        stored = await context.store.get_alert(alert_id)
    if stored is None:
        return html_response(render_missing_alert(alert_id), status=404)
    silence: Silence | None = None
    problem: str | None = None
    if (silence_id := stored.alert.silenced_by) is not None:
        silence = next((s for s in context.config_silences if s.id == silence_id), None)
        if silence is None:
            try:
                async with asyncio.timeout(context.store_timeout_s):
                    silence = await context.store.get_silence(silence_id)
            except (StoreError, TimeoutError) as exc:
                problem = f"the store did not answer: {exc or 'timed out'}"
    else:
        silence = await _matching_now(context, stored.alert)
    view = AlertView(
        stored,
        silence=silence,
        problem=problem,
        csrf=page_csrf(request),
        signin_enabled=context.admin_token is not None,
        flash=request.query.get("flash"),
    )
    return html_response(render_alert_page(view))


async def _matching_now(context: HttpContext, alert: Alert) -> Silence | None:
    """The silence that would hold `alert` back now (one made since it was sent)."""
    now = context.now()
    try:
        async with asyncio.timeout(context.store_timeout_s):
            stored = await context.store.list_silences(now=now)
    except (StoreError, TimeoutError):
        stored = []
    return matching_silence(alert, [*context.config_silences, *stored], now)
