"""The silence endpoints of the admin API (routed by `relay.http.admin_api`).

    GET    /api/v1/silences               ?include_expired=true
    POST   /api/v1/silences               {"matchers": [...], "ends_at"|"duration", ...}
    DELETE /api/v1/silences/{id}          expires it now

`matchers` is a list of strings in Alertmanager's syntax (`["team=~\"pay.*\""]`), a
list of Alertmanager v2 objects (`{"name", "value", "isRegex", "isEqual"}`) or the old
map (`{"rule": "x"}`: equality matchers); responses give them as canonical strings,
with `recurring` (the names of a config silence's time intervals) and `active_now`.

Invariants:
- Config silences are listed beside the stored ones (`origin: "config"`) but cannot be
  expired here: they live in the configuration file.
- A silence is stored only once its matchers and times pass `silence_problems`:
  matchers that cannot be read (a bad regex) are a 400 whose `problems` name the entry
  (`matchers[1]`, `matchers[1].isRegex`, `matchers.team`); a refused silence (ends in
  the past, `severity="loud"`) is a 422 whose `problems` name the field.
- `active` is "in force" (started, not ended or expired); `active_now` is whether it
  mutes alerts at this moment, which a recurring silence does only inside its windows.
- Expiring never deletes: an expired silence stays listed with `include_expired=true`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import Field, model_validator

from relay.clock import UtcDatetime
from relay.domain.silences import (
    Silence,
    active,
    end_after,
    in_force,
    new_silence,
    window_problems,
)
from relay.durations import utc_iso
from relay.http.admin_requests import RequestModel, parse_body, parse_flag, parse_query
from relay.http.common import CONTEXT, ApiError, json_response
from relay.matchers import canonical
from relay.settings import MatcherProblems, PositiveDuration, ReadMatchers, read_matchers

__all__ = [
    "NewSilence",
    "create_silence",
    "expire_silence",
    "list_silences",
    "silence_to_dict",
]


class NewSilence(RequestModel):
    """The body of POST /api/v1/silences; matchers are read by `read_matchers`
    (so a bad one is a 400 naming its entry) and checked by the silence domain."""

    matchers: Any  # any JSON: `read_matchers` says what is wrong with it
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


def silence_to_dict(silence: Silence, *, now: datetime) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": canonical(silence.matchers),
        "starts_at": utc_iso(silence.starts_at),
        "ends_at": None if silence.open_ended else utc_iso(silence.ends_at),
        "creator": silence.creator,
        "comment": silence.comment,
        "created_at": utc_iso(silence.created_at),
        "expired_at": utc_iso(silence.expired_at),
        "origin": silence.origin,
        "active": in_force(silence, now),
        "recurring": silence.recurring,
        "active_now": active(silence, now),
    }


def _matcher_path(loc: tuple[str | int, ...]) -> str:
    """`(1, "isRegex")` as `matchers[1].isRegex`, `("team",)` as `matchers.team`."""
    path = "matchers"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _matchers(value: Any) -> ReadMatchers:
    try:
        return read_matchers(value, check=False)
    except MatcherProblems as exc:
        problems = [{"path": _matcher_path(loc), "message": m} for loc, m in exc.problems]
        listed = "; ".join(f"{p['path']}: {p['message']}" for p in problems)
        raise ApiError(
            400, "bad_request", f"invalid matchers: {listed}", problems=problems
        ) from None


def _problem(text: str) -> dict[str, str]:
    path, sep, message = text.partition(": ")
    return {"path": path, "message": message} if sep else {"path": "body", "message": text}


def _config_silence_listed(silence: Silence, *, now: datetime, include_expired: bool) -> bool:
    return include_expired or (silence.expired_at is None and silence.ends_at > now)


async def list_silences(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    query = parse_query(request, ("include_expired",))
    include_expired = parse_flag(query, "include_expired")
    now = context.now()
    stored = await context.store.list_silences(now=now, include_expired=include_expired)
    configured = [
        s
        for s in context.config_silences
        if _config_silence_listed(s, now=now, include_expired=include_expired)
    ]
    silences = sorted([*configured, *stored], key=lambda s: (s.starts_at, s.id))
    return json_response({"silences": [silence_to_dict(s, now=now) for s in silences]})


async def create_silence(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
    body = await parse_body(request, NewSilence)
    now = context.now()
    starts_at = body.starts_at or now
    try:
        ends_at = body.ends_at or end_after(starts_at, body.duration or timedelta(0))
    except ValueError as exc:
        raise ApiError(
            422, "invalid", f"invalid silence: {exc}", problems=[_problem(str(exc))]
        ) from None
    matchers = _matchers(body.matchers)
    problems = [f"{_matcher_path(loc)}: {message}" for loc, message in matchers.problems()]
    problems += window_problems(starts_at=starts_at, ends_at=ends_at, now=now)
    if problems:
        raise ApiError(
            422,
            "invalid",
            f"invalid silence: {'; '.join(problems)}",
            problems=[_problem(p) for p in problems],
        )
    silence = new_silence(
        matchers.matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        now=now,
        creator=body.creator,
        comment=body.comment,
    )
    await context.store.add_silence(silence)
    return json_response(silence_to_dict(silence, now=now), status=201)


async def expire_silence(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    parse_query(request, ())
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
