"""Reading admin API requests: query parameters and JSON bodies, for `relay.http.admin_api`.

Responses write times with `relay.durations.utc_iso` (UTC, with a `Z`).

Invariants:
- Input is validated before a handler reads or writes anything; a bad query or body is
  a 400 or 422 whose `problems` name the field, never echo its value.
- Unknown or repeated query parameters are refused (400), so a typo never silently
  widens a query.
- Request bodies are pydantic models that forbid extra fields and are frozen.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from relay.durations import parse_duration
from relay.http.common import ApiError

__all__ = [
    "MAX_LIMIT",
    "RequestModel",
    "bad_param",
    "parse_body",
    "parse_flag",
    "parse_limit",
    "parse_query",
    "parse_since",
]

MAX_LIMIT = 500
_M = TypeVar("_M", bound=BaseModel)


def parse_query(request: web.Request, allowed: Collection[str]) -> dict[str, str]:
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


def bad_param(name: str, message: str) -> ApiError:
    return ApiError(
        400, "bad_request", f"{name}: {message}", problems=[{"path": name, "message": message}]
    )


def parse_limit(query: Mapping[str, str], *, default: int) -> int:
    text = query.get("limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise bad_param("limit", f"should be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def parse_flag(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise bad_param(name, "should be true or false")
    return text in ("true", "1")


def parse_since(query: Mapping[str, str], *, now: datetime) -> datetime | None:
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
        raise bad_param(
            "since", "should be a time with an offset (2026-03-02T09:00:00Z) or a duration (2h)"
        )
    return moment


async def parse_body(request: web.Request, model: type[_M]) -> _M:
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


class RequestModel(BaseModel):
    """The base of every request body: unknown fields are refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
