"""What a signed-in operator can do from the status page and an alert's page: HTML
forms posting here, each answered with a 303 back to the page and a flash code.

    POST /alerts/{id}/silence     duration=1h|24h|custom [custom=90m] [comment=...]
    POST /alerts/{id}/ack
    POST /silences/{id}/expire
    POST /deliveries/replay       sink=NAME [id=NOTIFICATION_ID]  (no id: all of the sink)

Invariants:
- Every handler starts with `relay.http.signin.checked_form` (same site, a session, its
  CSRF token); refused, nothing is read or changed.
- The work is the admin API's: a silence of an alert has the Slack button's matchers
  (`relay.domain.actions.silence_matchers`) and is made by `new_silence`; acknowledging
  keeps the first acknowledgement; expiring refuses config silences; replaying is the
  store's `retry_dead` over the sink's delivery targets, then wakes the workers.
- The creator of what an operator does here is `OPERATOR`.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from aiohttp import web

from relay.domain.actions import silence_matchers
from relay.domain.silences import MAX_SILENCE_LENGTH, new_silence
from relay.durations import parse_duration
from relay.http.alert_page import render_missing_alert
from relay.http.common import CONTEXT, html_response
from relay.http.html import alert_path
from relay.http.signin import checked_form, page_action, see_other

__all__ = ["OPERATOR", "add_status_action_routes"]

log = structlog.get_logger("relay.http.status_actions")

OPERATOR = "operator (status page)"
_QUICK = {"1h": timedelta(hours=1), "24h": timedelta(hours=24)}
_MAX_COMMENT_CHARS = 1000


def add_status_action_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/alerts/{id}/silence", page_action(_silence))
    r.add_post("/alerts/{id}/ack", page_action(_acknowledge))
    r.add_post("/silences/{id}/expire", page_action(_expire))
    r.add_post("/deliveries/replay", page_action(_replay))


def silence_length(choice: str, custom: str) -> timedelta | None:
    """How long the form asks to silence for, or None when it does not say well."""
    if choice in _QUICK:
        return _QUICK[choice]
    if choice != "custom":
        return None
    try:
        length = parse_duration(custom)
    except ValueError:
        return None
    return length if timedelta(0) < length <= MAX_SILENCE_LENGTH else None


def _alert_page(alert_id: str, flash: str) -> str:
    return f"{alert_path(alert_id)}?flash={flash}"


async def _silence(request: web.Request) -> web.Response:
    _, form = await checked_form(request)
    context = request.app[CONTEXT]
    alert_id = request.match_info["id"]
    stored = await context.store.get_alert(alert_id)
    if stored is None:
        return html_response(render_missing_alert(alert_id), status=404)
    length = silence_length(str(form.get("duration", "")), str(form.get("custom", "")))
    if length is None:
        return see_other(_alert_page(alert_id, "bad_duration"))
    now = context.now()
    comment = str(form.get("comment", "")).strip()[:_MAX_COMMENT_CHARS]
    silence = new_silence(
        silence_matchers(stored.alert),
        ends_at=now + length,
        now=now,
        creator=OPERATOR,
        comment=comment or f"from the status page: silence of alert {alert_id}",
    )
    await context.store.add_silence(silence)
    log.info("http.page_action", action="silence", alert_id=alert_id, silence_id=silence.id)
    return see_other(_alert_page(alert_id, "silenced"))


async def _acknowledge(request: web.Request) -> web.Response:
    await checked_form(request)
    context = request.app[CONTEXT]
    alert_id = request.match_info["id"]
    if await context.store.get_alert(alert_id) is None:
        return html_response(render_missing_alert(alert_id), status=404)
    done = await context.store.acknowledge_alert(
        alert_id, by=OPERATOR, at=context.now(), comment="acknowledged on the status page"
    )
    log.info("http.page_action", action="ack", alert_id=alert_id, changed=done)
    return see_other(_alert_page(alert_id, "acknowledged" if done else "already_acknowledged"))


async def _expire(request: web.Request) -> web.Response:
    await checked_form(request)
    context = request.app[CONTEXT]
    silence_id = request.match_info["id"]
    if any(s.id == silence_id for s in context.config_silences):
        flash = "config_silence"
    elif await context.store.expire_silence(silence_id, now=context.now()):
        flash = "expired"
    else:
        known = await context.store.get_silence(silence_id) is not None
        flash = "already_ended" if known else "unknown_silence"
    log.info("http.page_action", action="expire", silence_id=silence_id, outcome=flash)
    return see_other(f"/?flash={flash}#h-silences")


async def _replay(request: web.Request) -> web.Response:
    _, form = await checked_form(request)
    context = request.app[CONTEXT]
    sink = str(form.get("sink", ""))
    if not sink:
        raise web.HTTPBadRequest(reason="the form names no sink")
    one = form.get("id")
    ids = [one] if isinstance(one, str) and one else None
    count = await context.store.retry_dead(
        now=context.now(), sink=context.settings.targets_of(sink), ids=ids
    )
    if count and context.on_deliveries_retried is not None:
        context.on_deliveries_retried()
    log.info("http.page_action", action="replay", sink=sink, one=ids is not None, count=count)
    return see_other(f"/?flash={'replayed' if count else 'nothing_replayed'}#h-dead-letters")
