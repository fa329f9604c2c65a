"""The admin API under /api/v1: alerts, silences and the dead-letter queue.

    GET    /api/v1/alerts                 ?rule=&state=firing|resolved&source=&since=&limit=&cursor=
    GET    /api/v1/alerts/{id}
    POST   /api/v1/alerts/{id}/ack        {"comment": "...", "by": "..."} (both optional)
    GET    /api/v1/silences               ?include_expired=true
    POST   /api/v1/silences               {"matchers": {...}, "ends_at"|"duration", ...}
    DELETE /api/v1/silences/{id}          expires it now
    GET    /api/v1/deliveries             ?sink=&limit=        dead letters + outbox counts
    POST   /api/v1/deliveries/retry       {"ids": [...]} | {"all": true}, optional "sink"
    POST   /api/v1/deliveries/purge       same body
    POST   /api/v1/deliveries/{id}/retry  ?sink=

Invariants:
- Input is validated before anything is read or written; a bad query or body is a 400
  or 422 whose `problems` name the field, never echo its value.
- Unknown query parameters are refused (400), so a typo never silently widens a query.
- `sink` names a sink (every delivery target of it: `am` is `am[host:port]` for each URL of an
  Alertmanager with `urls`) or one target (`am[host:port]`).
- Every alert carries `acknowledged`: `{by, at, comment}` or null. Acknowledging is
  idempotent: the first acknowledgement stays, a second call answers 200 with it.
- Config silences are listed beside the stored ones (`origin: "config"`) but cannot be
  expired here: they live in the configuration file.
- Responses carry alerts, silences and notifications as the codec writes them; none of
  them holds a secret (alerts carry only redacted, bounded excerpts).

Request parsing lives in `relay.http.admin_requests`, the silence handlers (and
`silence_to_dict`) in `relay.http.admin_silences`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import Field, model_validator

from relay.domain.acks import MAX_ACK_BY_CHARS, MAX_ACK_COMMENT_CHARS
from relay.domain.codec import alert_to_dict, notification_to_dict
from relay.durations import utc_iso
from relay.http.admin_requests import (
    RequestModel,
    bad_param,
    parse_body,
    parse_limit,
    parse_query,
    parse_since,
)
from relay.http.admin_silences import create_silence, expire_silence, list_silences
from relay.http.common import CONTEXT, ApiError, HttpContext, json_response

if TYPE_CHECKING:
    from relay.store import DeadLetter, StoredAlert
    from relay.vocab import AlertState

__all__ = ["add_api_routes"]

_MAX_IDS = 1000
_STATES: dict[str, AlertState] = {"firing": "firing", "resolved": "resolved"}


def add_api_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/alerts", _list_alerts)
    r.add_get("/api/v1/alerts/{id}", _get_alert)
    r.add_post("/api/v1/alerts/{id}/ack", _acknowledge_alert)
    r.add_get("/api/v1/silences", list_silences)
    r.add_post("/api/v1/silences", create_silence)
    r.add_delete("/api/v1/silences/{id}", expire_silence)
    r.add_get("/api/v1/deliveries", _list_deliveries)
    r.add_post("/api/v1/deliveries/retry", _retry_deliveries)
    r.add_post("/api/v1/deliveries/purge", _purge_deliveries)
    r.add_post("/api/v1/deliveries/{id}/retry", _retry_delivery)


# --- alerts -----------------------------------------------------------------------------


def _stored_alert_to_dict(stored: StoredAlert) -> dict[str, Any]:
    body = alert_to_dict(stored.alert)
    body["created_at"] = utc_iso(stored.created_at)
    body["updated_at"] = utc_iso(stored.updated_at)
    ack = stored.acknowledgement
    body["acknowledged"] = (
        None if ack is None else {"by": ack.by, "at": utc_iso(ack.at), "comment": ack.comment}
    )
    body["deliveries"] = [
        {
            "notification_id": d.notification_id,
            "sink": d.sink,
            "kind": d.kind,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "delivered_at": utc_iso(d.delivered_at),
            "dead_at": utc_iso(d.dead_at),
        }
        for d in stored.deliveries
    ]
    return body


async def _list_alerts(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = parse_query(request, ("rule", "state", "source", "since", "limit", "cursor"))
    state_text = query.get("state")
    state = None if state_text is None else _STATES.get(state_text)
    if state_text is not None and state is None:
        raise bad_param("state", "should be firing or resolved")
    try:
        page = await context.store.list_alerts(
            rule=query.get("rule"),
            state=state,
            source=query.get("source"),
            since=parse_since(query, now=context.now()),
            limit=parse_limit(query, default=50),
            before=query.get("cursor"),
        )
    except ValueError:
        raise bad_param("cursor", "not a cursor this API returned; start without it") from None
    return json_response(
        {
            "alerts": [_stored_alert_to_dict(a) for a in page.alerts],
            "next_cursor": page.next_cursor,
        }
    )


async def _get_alert(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
    alert_id = request.match_info["id"]
    stored = await context.store.get_alert(alert_id)
    if stored is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return json_response(_stored_alert_to_dict(stored))


class NewAcknowledgement(RequestModel):
    """The body of POST /api/v1/alerts/{id}/ack (an empty body will do)."""

    comment: str = Field(default="", max_length=MAX_ACK_COMMENT_CHARS)
    by: str = Field(default="admin", min_length=1, max_length=MAX_ACK_BY_CHARS)


async def _acknowledge_alert(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
    body = await parse_body(request, NewAcknowledgement)
    alert_id = request.match_info["id"]
    await context.store.acknowledge_alert(
        alert_id, by=body.by, at=context.now(), comment=body.comment
    )
    stored = await context.store.get_alert(alert_id)
    if stored is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return json_response(_stored_alert_to_dict(stored))


# --- deliveries -------------------------------------------------------------------------


class Selection(RequestModel):
    """The body of POST /api/v1/deliveries/retry and /purge."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=_MAX_IDS)
    sink: str | None = None
    all: bool = False

    @model_validator(mode="after")
    def _explicit(self) -> Selection:
        # An empty body must not replay or delete everything by accident.
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids": [...] or "all": true')
        return self


def _dead_letter_to_dict(letter: DeadLetter) -> dict[str, Any]:
    notification = letter.notification
    return {
        "id": notification.id,
        "sink": notification.sink,
        "kind": notification.kind,
        "alert_id": notification.alert.id,
        "rule": notification.alert.rule,
        "summary": notification.alert.summary,
        "attempts": letter.attempts,
        "first_enqueued_at": utc_iso(letter.first_enqueued_at),
        "dead_at": utc_iso(letter.dead_at),
        "reason": letter.reason,
        "notification": notification_to_dict(notification),
    }


async def _list_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = parse_query(request, ("sink", "limit"))
    letters = await context.store.dead_letters(
        sink=_targets(context, query.get("sink")), limit=parse_limit(query, default=100)
    )
    counts = await context.store.outbox_counts()
    return json_response(
        {
            "dead_letters": [_dead_letter_to_dict(letter) for letter in letters],
            "outbox": {
                sink: {"pending": c.pending, "dead": c.dead} for sink, c in sorted(counts.items())
            },
        }
    )


def _targets(context: HttpContext, sink: str | None) -> tuple[str, ...] | None:
    """`sink=am` selects every delivery target of sink am; `sink=am[host:port]` one of them."""
    return None if sink is None else context.settings.targets_of(sink)


def _woken(context: HttpContext, count: int) -> None:
    if count and context.on_deliveries_retried is not None:
        context.on_deliveries_retried()


async def _retry_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
    selection = await parse_body(request, Selection)
    count = await context.store.retry_dead(
        now=context.now(), sink=_targets(context, selection.sink), ids=selection.ids
    )
    _woken(context, count)
    return json_response({"retried": count})


async def _purge_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
    selection = await parse_body(request, Selection)
    count = await context.store.purge_dead(
        sink=_targets(context, selection.sink), ids=selection.ids
    )
    return json_response({"purged": count})


async def _retry_delivery(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = parse_query(request, ("sink",))
    notification_id = request.match_info["id"]
    count = await context.store.retry_dead(
        now=context.now(), sink=_targets(context, query.get("sink")), ids=[notification_id]
    )
    if not count:
        raise ApiError(404, "not_found", f"no dead letter {notification_id!r}")
    _woken(context, count)
    return json_response({"retried": count})
