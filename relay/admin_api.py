"""The admin API under /api/v1: alerts, silences and the dead-letter queue.

    GET    /api/v1/alerts                 ?rule=&state=firing|resolved&source=&since=&limit=&cursor=
    GET    /api/v1/alerts/{id}
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
- Config silences are listed beside the stored ones (`origin: "config"`) but cannot be
  expired here: they live in the configuration file.
- Responses carry alerts, silences and notifications as the codec writes them; none of
  them holds a secret (alerts carry only redacted, bounded excerpts).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from relay.domain.codec import alert_to_dict, notification_to_dict
from relay.domain.durations import parse_duration
from relay.domain.silences import Silence, active, new_silence, silence_problems
from relay.http_common import CONTEXT, ApiError, HttpContext, json_response
from relay.settings._base import PositiveDuration, UtcDatetime

if TYPE_CHECKING:
    from relay.domain.alerts import AlertState
    from relay.store.base import DeadLetter, StoredAlert

__all__ = ["add_api_routes", "silence_to_dict"]

_MAX_LIMIT = 500
_MAX_IDS = 1000
_M = TypeVar("_M", bound=BaseModel)
_STATES: dict[str, AlertState] = {"firing": "firing", "resolved": "resolved"}


def add_api_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/alerts", _list_alerts)
    r.add_get("/api/v1/alerts/{id}", _get_alert)
    r.add_get("/api/v1/silences", _list_silences)
    r.add_post("/api/v1/silences", _create_silence)
    r.add_delete("/api/v1/silences/{id}", _expire_silence)
    r.add_get("/api/v1/deliveries", _list_deliveries)
    r.add_post("/api/v1/deliveries/retry", _retry_deliveries)
    r.add_post("/api/v1/deliveries/purge", _purge_deliveries)
    r.add_post("/api/v1/deliveries/{id}/retry", _retry_delivery)


# --- request parsing --------------------------------------------------------------------


def _query(request: web.Request, allowed: Collection[str]) -> dict[str, str]:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "bad_request",
            f"unknown query parameter(s) {', '.join(unknown)}; "
            f"this endpoint takes {', '.join(sorted(allowed)) or 'none'}",
            problems=[{"path": name, "message": "unknown parameter"} for name in unknown],
        )
    repeated = sorted(name for name in request.query if len(request.query.getall(name)) > 1)
    if repeated:
        raise ApiError(400, "bad_request", f"give {', '.join(repeated)} only once")
    return {name: request.query[name] for name in request.query}


def _bad_param(name: str, message: str) -> ApiError:
    return ApiError(
        400, "bad_request", f"{name}: {message}", problems=[{"path": name, "message": message}]
    )


def _limit(query: Mapping[str, str], *, default: int) -> int:
    text = query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= _MAX_LIMIT:
        raise _bad_param("limit", f"should be a whole number from 1 to {_MAX_LIMIT}")
    return int(text)


def _flag(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise _bad_param(name, "should be true or false")
    return text in ("true", "1")


def _since(query: Mapping[str, str], *, now: datetime) -> datetime | None:
    """`since` is a time (RFC 3339 with an offset) or a duration back from now (`2h`)."""
    text = query.get("since")
    if text is None:
        return None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad_param(
            "since", "should be a time with an offset (2026-03-02T09:00:00Z) or a duration (2h)"
        )
    return moment


async def _body(request: web.Request, model: type[_M]) -> _M:
    if not request.can_read_body:
        raw: Any = {}
    else:
        try:
            raw = await request.json()
        except ValueError:
            raise ApiError(400, "bad_request", "the body is not valid JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # Only locations and messages: the values may be anything the client sent.
        problems = [
            {
                "path": ".".join(str(p) for p in error["loc"]) or "body",
                "message": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors(include_input=False, include_url=False)
        ]
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ApiError(
            422, "invalid", f"invalid request body: {listed}", problems=problems
        ) from None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewSilence(_Request):
    """The body of POST /api/v1/silences; matchers are checked by the silence domain."""

    matchers: dict[str, str]
    starts_at: UtcDatetime | None = None
    ends_at: UtcDatetime | None = None
    duration: PositiveDuration | None = None
    comment: str = Field(default="", max_length=1000)
    creator: str = Field(default="api", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_end(self) -> NewSilence:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give exactly one of ends_at (a time) or duration (like 2h)")
        return self


class Selection(_Request):
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


# --- alerts -----------------------------------------------------------------------------


def _stored_alert_to_dict(stored: StoredAlert) -> dict[str, Any]:
    body = alert_to_dict(stored.alert)
    body["created_at"] = _time(stored.created_at)
    body["updated_at"] = _time(stored.updated_at)
    body["deliveries"] = [
        {
            "notification_id": d.notification_id,
            "sink": d.sink,
            "kind": d.kind,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "delivered_at": _time(d.delivered_at),
        }
        for d in stored.deliveries
    ]
    return body


async def _list_alerts(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = _query(request, ("rule", "state", "source", "since", "limit", "cursor"))
    state_text = query.get("state")
    state = None if state_text is None else _STATES.get(state_text)
    if state_text is not None and state is None:
        raise _bad_param("state", "should be firing or resolved")
    try:
        page = await context.store.list_alerts(
            rule=query.get("rule"),
            state=state,
            source=query.get("source"),
            since=_since(query, now=context.now()),
            limit=_limit(query, default=50),
            before=query.get("cursor"),
        )
    except ValueError:
        raise _bad_param("cursor", "not a cursor this API returned; start without it") from None
    return json_response(
        {
            "alerts": [_stored_alert_to_dict(a) for a in page.alerts],
            "next_cursor": page.next_cursor,
        }
    )


async def _get_alert(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    _query(request, ())
    alert_id = request.match_info["id"]
    stored = await context.store.get_alert(alert_id)
    if stored is None:
        raise ApiError(404, "not_found", f"no alert {alert_id!r}")
    return json_response(_stored_alert_to_dict(stored))


# --- silences ---------------------------------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def silence_to_dict(silence: Silence, *, now: datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": dict(silence.matchers),
        "starts_at": _time(silence.starts_at),
        "ends_at": _time(silence.ends_at),
        "creator": silence.creator,
        "comment": silence.comment,
        "created_at": _time(silence.created_at),
        "expired_at": _time(silence.expired_at),
        "origin": silence.origin,
        "active": active(silence, now),
    }


def _problem(text: str) -> dict[str, str]:
    path, sep, message = text.partition(": ")
    return {"path": path, "message": message} if sep else {"path": "body", "message": text}


def _config_silence_listed(silence: Silence, *, now: datetime, include_expired: bool) -> bool:
    return include_expired or (silence.expired_at is None and silence.ends_at > now)


async def _list_silences(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = _query(request, ("include_expired",))
    include_expired = _flag(query, "include_expired")
    now = context.now()
    stored = await context.store.list_silences(now=now, include_expired=include_expired)
    configured = [
        s
        for s in context.config_silences
        if _config_silence_listed(s, now=now, include_expired=include_expired)
    ]
    silences = sorted([*configured, *stored], key=lambda s: (s.starts_at, s.id))
    return json_response({"silences": [silence_to_dict(s, now=now) for s in silences]})


async def _create_silence(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    _query(request, ())
    body = await _body(request, NewSilence)
    now = context.now()
    starts_at = body.starts_at or now
    ends_at = body.ends_at or starts_at + (body.duration or timedelta(0))
    problems = silence_problems(body.matchers, starts_at=starts_at, ends_at=ends_at, now=now)
    if problems:
        raise ApiError(
            422,
            "invalid",
            f"invalid silence: {'; '.join(problems)}",
            problems=[_problem(p) for p in problems],
        )
    silence = new_silence(
        body.matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        now=now,
        creator=body.creator,
        comment=body.comment,
    )
    await context.store.add_silence(silence)
    return json_response(silence_to_dict(silence, now=now), status=201)


async def _expire_silence(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    _query(request, ())
    silence_id = request.match_info["id"]
    if any(s.id == silence_id for s in context.config_silences):
        raise ApiError(
            409,
            "conflict",
            f"silence {silence_id!r} is defined in the configuration file; remove it from "
            "`silences:` there and restart the relay",
        )
    now = context.now()
    if not await context.store.expire_silence(silence_id, now=now):
        known = await context.store.get_silence(silence_id)
        if known is None:
            raise ApiError(404, "not_found", f"no silence {silence_id!r}")
        raise ApiError(409, "conflict", f"silence {silence_id!r} has already ended")
    expired = await context.store.get_silence(silence_id)
    body = silence_to_dict(expired, now=now) if expired else {"id": silence_id}
    return json_response(body)


# --- deliveries -------------------------------------------------------------------------


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
        "first_enqueued_at": _time(letter.first_enqueued_at),
        "dead_at": _time(letter.dead_at),
        "reason": letter.reason,
        "notification": notification_to_dict(notification),
    }


async def _list_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = _query(request, ("sink", "limit"))
    letters = await context.store.dead_letters(
        sink=query.get("sink"), limit=_limit(query, default=100)
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


def _woken(context: HttpContext, count: int) -> None:
    if count and context.on_deliveries_retried is not None:
        context.on_deliveries_retried()


async def _retry_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    _query(request, ())
    selection = await _body(request, Selection)
    count = await context.store.retry_dead(
        now=context.now(), sink=selection.sink, ids=selection.ids
    )
    _woken(context, count)
    return json_response({"retried": count})


async def _purge_deliveries(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    _query(request, ())
    selection = await _body(request, Selection)
    count = await context.store.purge_dead(sink=selection.sink, ids=selection.ids)
    return json_response({"purged": count})


async def _retry_delivery(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = _query(request, ("sink",))
    notification_id = request.match_info["id"]
    count = await context.store.retry_dead(
        now=context.now(), sink=query.get("sink"), ids=[notification_id]
    )
    if not count:
        raise ApiError(404, "not_found", f"no dead letter {notification_id!r}")
    _woken(context, count)
    return json_response({"retried": count})
