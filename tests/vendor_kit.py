"""Loopback fakes of the vendors the relay pages: PagerDuty's Events API v2 and a Teams
Workflows webhook. Each validates every request the way the vendor documents it and
answers like the vendor, so a sink that drifts from the contract fails here.

- `FakePagerDuty` checks each event against the Events API v2 rules (required fields,
  lengths, enum values, JSON types), keeps incidents by `dedup_key` (trigger opens or
  folds into one, resolve closes it), answers 202 `{"status": "success", ...}`, 400
  `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`,
  or a queued failure (`fail_next`: a status, 429 with `Retry-After`).
- `FakeTeams` checks the `sig` of the URL, the message envelope and the card against
  the official Adaptive Card 1.5 schema (`tests/data/adaptive-card-1.5.json`) and the
  28 KB limit; answers 202 Accepted, or 400 with what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import jsonschema
from aiohttp import web

SCHEMA_PATH = Path(__file__).parent / "data" / "adaptive-card-1.5.json"
ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
TEAMS_SIG = "wOrKfLoWsIgNaTuRe-0123456789abcdefXYZ"
TEAMS_LIMIT_BYTES = 28 * 1024
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_ACTIONS = ("trigger", "acknowledge", "resolve")
_PD_TOP_KEYS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "images",
    "links",
    "client",
    "client_url",
}
_PD_PAYLOAD_KEYS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}


@cache
def card_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)  # type: ignore[no-any-return]


def card_errors(card: Any) -> list[str]:
    """Where `card` breaks the Adaptive Card 1.5 schema (empty: valid)."""
    errors = list(card_validator().iter_errors(card))
    if not errors:
        return []
    worst = jsonschema.exceptions.best_match(errors)
    return [f"{'/'.join(map(str, worst.absolute_path))}: {worst.message}"]


def _str(value: Any, *, name: str, max_chars: int | None = None, required: bool) -> list[str]:
    if value is None:
        return [f"{name} is required"] if required else []
    if not isinstance(value, str):
        return [f"{name} must be a string"]
    if required and not value:
        return [f"{name} must not be empty"]
    if max_chars is not None and len(value) > max_chars:
        return [f"{name} must be at most {max_chars} characters"]
    return []


def pagerduty_errors(event: Any, *, routing_keys: set[str]) -> list[str]:
    """Where `event` breaks the Events API v2 rules (empty: valid)."""
    if not isinstance(event, dict):
        return ["event must be a JSON object"]
    errors = [f"unknown field {key}" for key in sorted(set(event) - _PD_TOP_KEYS)]
    key = event.get("routing_key")
    errors += _str(key, name="routing_key", required=True)
    if isinstance(key, str) and (len(key) != 32 or key not in routing_keys):
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append(f"event_action must be one of {', '.join(PD_ACTIONS)}")
    errors += _str(
        event.get("dedup_key"), name="dedup_key", max_chars=255, required=action != "trigger"
    )
    for name in ("client", "client_url"):
        errors += _str(event.get(name), name=name, required=False)
    links = event.get("links", [])
    if not isinstance(links, list):
        errors.append("links must be an array")
    else:
        for index, link in enumerate(links):
            if not isinstance(link, dict) or not isinstance(link.get("href"), str):
                errors.append(f"links[{index}].href must be a string")
            elif not isinstance(link.get("text", ""), str):
                errors.append(f"links[{index}].text must be a string")
    if action != "trigger":
        return errors
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return [*errors, "payload must be a JSON object"]
    errors += [f"unknown field payload.{k}" for k in sorted(set(payload) - _PD_PAYLOAD_KEYS)]
    errors += _str(payload.get("summary"), name="payload.summary", max_chars=1024, required=True)
    errors += _str(payload.get("source"), name="payload.source", required=True)
    if payload.get("severity") not in PD_SEVERITIES:
        errors.append(f"payload.severity must be one of {', '.join(PD_SEVERITIES)}")
    for name in ("component", "group", "class"):
        errors += _str(payload.get(name), name=f"payload.{name}", required=False)
    stamp = payload.get("timestamp")
    errors += _str(stamp, name="payload.timestamp", required=False)
    if isinstance(stamp, str):
        try:
            datetime.fromisoformat(stamp)
        except ValueError:
            errors.append("payload.timestamp must be ISO 8601")
    if not isinstance(payload.get("custom_details", {}), dict):
        errors.append("payload.custom_details must be a JSON object")
    return errors


@dataclass
class Incident:
    dedup_key: str
    status: str  # triggered | resolved
    events: list[dict[str, Any]] = field(default_factory=list)


class _Server:
    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakePagerDuty(_Server):
    """`POST /v2/enqueue` of the Events API v2 (module docstring)."""

    def __init__(self, *, routing_keys: set[str] | None = None, echo_key: bool = False) -> None:
        super().__init__()
        self.routing_keys = routing_keys if routing_keys is not None else {ROUTING_KEY}
        self.events: list[dict[str, Any]] = []  # every accepted event, in order
        self.refused: list[list[str]] = []
        self.incidents: dict[str, Incident] = {}
        # The next requests' answers: a status and headers, or None to process it.
        self.fail_next: list[tuple[int, dict[str, str]] | None] = []
        self.echo_key = echo_key  # a careless vendor: the error quotes the key it got
        self.requests = 0

    @property
    def api_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)

    async def _enqueue(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.content_type != "application/json":
            return self._invalid(["Content-Type must be application/json"])
        failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is not None:
            status, headers = failure
            body = {
                "status": "throttle event",
                "message": "Requests for this service are throttled",
            }
            return web.json_response(body, status=status, headers=headers)
        try:
            event = json.loads(await request.read())
        except ValueError:
            return self._invalid(["Event object is not valid JSON"])
        errors = pagerduty_errors(event, routing_keys=self.routing_keys)
        if errors:
            if self.echo_key and isinstance(event, dict):
                errors.append(f"routing_key {event.get('routing_key')} is not known")
            return self._invalid(errors)
        self.events.append(event)
        key = event.get("dedup_key") or f"pd-{len(self.events)}"
        incident = self.incidents.get(key)
        if event["event_action"] == "trigger":
            if incident is None or incident.status == "resolved":
                incident = self.incidents[key] = Incident(key, "triggered")
        elif incident is not None:
            incident.status = "resolved"
        if incident is not None:
            incident.events.append(event)
        body = {"status": "success", "message": "Event processed", "dedup_key": key}
        return web.json_response(body, status=202)

    def _invalid(self, errors: list[str]) -> web.Response:
        self.refused.append(errors)
        body = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return web.json_response(body, status=400)


@dataclass
class TeamsPost:
    message: dict[str, Any]
    size_bytes: int

    @property
    def card(self) -> dict[str, Any]:
        return self.message["attachments"][0]["content"]  # type: ignore[no-any-return]


class FakeTeams(_Server):
    """A Workflows "When a Teams webhook request is received" trigger (module docstring)."""

    def __init__(self, *, sig: str = TEAMS_SIG, status: int = 202, echo_url: bool = False) -> None:
        super().__init__()
        self.sig = sig
        self.status = status  # what to answer a valid message with
        self.echo_url = echo_url  # a careless vendor: that answer quotes the URL
        self.posts: list[TeamsPost] = []
        self.refused: list[list[str]] = []

    @property
    def webhook_url(self) -> str:
        return (
            f"{self.url}/workflows/0a1b2c3d/triggers/manual/paths/invoke"
            f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}"
        )

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", self._invoke)

    async def _invoke(self, request: web.Request) -> web.Response:
        if request.query.get("sig") != self.sig:
            return web.json_response(
                {"error": {"code": "DirectApiAuthorizationRequired"}}, status=401
            )
        raw = await request.read()
        errors = self._errors(raw, request.content_type)
        if errors:
            self.refused.append(errors)
            return web.Response(status=400, text="; ".join(errors))
        self.posts.append(TeamsPost(json.loads(raw), len(raw)))
        text = f"refused, posted to {request.url}" if self.echo_url else ""
        return web.Response(status=self.status, text=text)

    def _errors(self, raw: bytes, content_type: str) -> list[str]:
        if content_type != "application/json":
            return ["Content-Type must be application/json"]
        if len(raw) > TEAMS_LIMIT_BYTES:
            return [f"message of {len(raw)} bytes exceeds {TEAMS_LIMIT_BYTES}"]
        try:
            message = json.loads(raw)
        except ValueError:
            return ["not JSON"]
        if not isinstance(message, dict) or message.get("type") != "message":
            return ['the body must be {"type": "message", "attachments": [...]}']
        attachments = message.get("attachments")
        if not isinstance(attachments, list) or len(attachments) != 1:
            return ["attachments must hold one card"]
        (attachment,) = attachments
        if set(attachment) != {"contentType", "contentUrl", "content"}:
            return [f"attachment keys {sorted(attachment)}"]
        if attachment["contentType"] != "application/vnd.microsoft.card.adaptive":
            return ["contentType must be application/vnd.microsoft.card.adaptive"]
        if attachment["contentUrl"] is not None:
            return ["contentUrl must be null"]
        card = attachment["content"]
        errors = card_errors(card)
        if isinstance(card, dict) and card.get("version") != "1.5":
            errors.append("version must be 1.5")
        return errors
