"""`POST /slack/interactions`: clicks on the Acknowledge / Silence buttons of Slack
messages (`relay.domain.actions`).

Slack posts `application/x-www-form-urlencoded` with one `payload` field, JSON of type
`block_actions`: who clicked (`user`), which button (`actions[0]`: `action_id`, `value`
= the alert id), and where (`container`: `channel_id`, `message_ts`).

Invariants:
- Nothing is read or changed before the request passes Slack's signature check
  (`slack_sdk.signature.SignatureVerifier`: `v0:{timestamp}:{body}` HMAC-SHA256 with
  the signing secret, timestamps more than 5 minutes from the injected clock refused).
  Every configured sink's secret is tried, each in constant time; the sink whose secret
  matches is the one whose bot token edits the message.
- The sinks, secrets and tokens are those of the settings in force for each request
  (`HttpContext.settings`, which a reload replaces): a rotated secret counts at once,
  a removed sink's secret no longer does. Web API clients are kept per (sink, token)
  and closed once the settings no longer name them, and all at app cleanup.
- A click acts only on an alert the signing sink was sent (or has queued): a Slack app
  cannot act on alerts another sink carries.
- Answers: 401 for a missing, bad or stale signature; 400 for a payload that is not a
  click on one of our buttons, or about an alert the store does not know or that
  the signing sink was never sent; 404 when no
  Slack sink takes actions; else 200 with an empty body, after the action is stored.
- Idempotent: acknowledging twice keeps the first acknowledgement; a silence's id comes
  from the click (`action_ts`), so the same click replayed stores nothing new.
- The message is edited (`chat.update`) before answering, within `UPDATE_BUDGET_S`, so
  Slack gets its answer within its 3 seconds; an edit that fails or is late is logged
  and the action stays done. It shows the alert as stored (firing or resolved); the
  buttons make way for a line saying who did what.
- Neither secret nor token is ever in a response, a log event or an error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import structlog
from aiohttp import web
from slack_sdk.signature import Clock, SignatureVerifier

from relay.domain.acks import slack_actor
from relay.domain.actions import ParsedAction, done_text, parse_action, silence_for
from relay.domain.alerts import Alert, Notification
from relay.errors import SinkError
from relay.http.common import CONTEXT, ApiError
from relay.settings import Settings, SlackSinkSettings
from relay.sinks.slack_api import SlackWebApi, slack_web_api
from relay.sinks.slack_blocks import slack_message
from relay.vocab import NotificationKind

__all__ = ["SLACK_PATH", "UPDATE_BUDGET_S", "SlackClients", "add_slack_routes", "slack_apps"]

log = structlog.get_logger("relay.http.slack_actions")

SLACK_PATH = "/slack/interactions"
UPDATE_BUDGET_S = 2.0
# Slack echoes the whole message in the payload: larger than the API's JSON bodies.
_MAX_BODY_BYTES = 1024 * 1024
_TOLERATED = ("message_not_found", "cant_update_message", "channel_not_found")


class _InjectedClock(Clock):
    """Slack's clock interface over the relay's clock (tests inject theirs)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now().timestamp()


@dataclass(frozen=True)
class SlackApp:
    """A Slack sink that takes actions: its secret's verifier and its settings."""

    sink: str
    verifier: SignatureVerifier
    settings: SlackSinkSettings

    def __repr__(self) -> str:
        return f"SlackApp({self.sink!r})"


class SlackClients:
    """Web API clients of the sinks that take actions, one per (sink, bot token),
    made when first needed; `prune` closes those the settings in force no longer name."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._clients: dict[tuple[str, str], SlackWebApi] = {}

    def client(self, app: SlackApp) -> SlackWebApi:
        assert app.settings.bot_token is not None
        key = (app.sink, app.settings.bot_token.get_secret_value())
        api = self._clients.get(key)
        if api is None:
            api = self._clients[key] = slack_web_api(app.sink, app.settings, now=self._now)
        return api

    async def prune(self, apps: tuple[SlackApp, ...]) -> None:
        keep = {
            (a.sink, a.settings.bot_token.get_secret_value())
            for a in apps
            if a.settings.bot_token is not None
        }
        for key in [k for k in self._clients if k not in keep]:
            await self._clients.pop(key).aclose()

    async def close(self, _: web.Application | None = None) -> None:
        await self.prune(())


SLACK_CLIENTS: web.AppKey[SlackClients] = web.AppKey("relay_slack_clients", SlackClients)


def slack_apps(settings: Settings, *, now: Callable[[], datetime]) -> tuple[SlackApp, ...]:
    """The Slack sinks with `bot_token` and `signing_secret` in `settings`."""
    clock = _InjectedClock(now)
    return tuple(
        SlackApp(
            sink=name,
            verifier=SignatureVerifier(sink.signing_secret.get_secret_value(), clock=clock),
            settings=sink,
        )
        for name, sink in settings.sinks.items()
        if sink.type == "slack" and sink.takes_actions and sink.signing_secret is not None
    )


@dataclass(frozen=True)
class _Click:
    action: ParsedAction
    user_id: str
    user_name: str
    channel: str
    ts: str
    action_ts: str


def add_slack_routes(app: web.Application, *, now: Callable[[], datetime]) -> None:
    """Route `POST /slack/interactions`; its Web API clients are closed with the app."""
    app[SLACK_CLIENTS] = clients = SlackClients(now)
    app.router.add_post(SLACK_PATH, _interactions)
    app.on_cleanup.append(clients.close)


async def _interactions(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    apps = slack_apps(context.settings, now=context.now)
    clients = request.app[SLACK_CLIENTS]
    await clients.prune(apps)  # a reload may have rotated or removed a token
    if not apps:
        raise ApiError(
            404,
            "not_found",
            "no Slack sink takes actions; set bot_token and signing_secret on a slack sink",
        )
    body = await _read_body(request)
    slack = _signed_by(apps, body, request.headers)
    if slack is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing, bad or stale Slack signature (X-Slack-Signature, "
            "X-Slack-Request-Timestamp within 5 minutes); check the sink's signing_secret",
        )
    click = _click(body)
    stored = await context.store.get_alert(click.action.alert_id)
    if stored is None:
        raise ApiError(400, "bad_request", f"no alert {click.action.alert_id!r}")
    sent = any(d.sink == slack.sink for d in stored.deliveries)
    if not sent and await context.store.get_message_ref(slack.sink, stored.alert.id) is None:
        # Only the app whose message carries the buttons may act on the alert.
        raise ApiError(
            400, "bad_request", f"alert {stored.alert.id!r} was never sent to sink {slack.sink!r}"
        )
    now = context.now()
    by = slack_actor(user_id=click.user_id, name=click.user_name)
    alert = stored.alert
    if click.action.action == "ack":
        await context.store.acknowledge_alert(
            alert.id, by=by, at=now, comment="acknowledged from Slack"
        )
        # The first acknowledgement stays; the line names whoever made it.
        first = (await context.store.get_alert(alert.id)) or stored
        ack = first.acknowledgement
        line = done_text(
            action="ack", by=ack.by if ack else by, at=ack.at if ack else now, until=None
        )
    else:
        silence = silence_for(
            alert,
            action=click.action.action,
            now=now,
            creator=by,
            comment=f"from Slack: {click.action.action.replace('_', ' ')} of alert {alert.id}",
            click=click.action_ts,
        )
        if not await context.store.add_silence(silence):
            silence = (await context.store.get_silence(silence.id)) or silence
        line = done_text(
            action=click.action.action,
            by=silence.creator,
            at=silence.created_at,
            until=silence.ends_at,
        )
    log.info(
        "slack.action",
        sink=slack.sink,
        action=click.action.action,
        alert_id=alert.id,
        user=by,
    )
    await _edit_message(slack, clients.client(slack), click, alert, line=line, now=now)
    return web.Response(status=200)


async def _read_body(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", "request body larger than 1 MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _signed_by(
    apps: tuple[SlackApp, ...], body: bytes, headers: Mapping[str, str]
) -> SlackApp | None:
    """The app whose signing secret signed `body`; every secret is tried."""
    timestamp = headers.get("X-Slack-Request-Timestamp")
    signature = headers.get("X-Slack-Signature")
    if not timestamp or not signature or not timestamp.strip().isdigit():
        return None
    found: SlackApp | None = None
    for slack in apps:  # no early exit: the time does not tell which secret matched
        try:
            valid = slack.verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        except (ValueError, UnicodeDecodeError):
            valid = False
        if valid and found is None:
            found = slack
    return found


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", f"not a click on a zaia-relay button: {message}")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _click(body: bytes) -> _Click:
    """The click a signed body holds, or a 400 saying what is missing."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise _bad("the body needs a payload field holding JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise _bad("payload.type should be block_actions")
    actions = payload.get("actions")
    first = actions[0] if isinstance(actions, list) and actions else None
    if not isinstance(first, dict):
        raise _bad("payload.actions is empty")
    parsed = parse_action(first.get("action_id"), first.get("value"))
    if parsed is None:
        raise _bad("payload.actions[0] is not one of the relay's buttons")
    user, container = _object(payload, "user"), _object(payload, "container")
    channel, message = _object(payload, "channel"), _object(payload, "message")
    user_id = _text(user.get("id"))
    channel_id = _text(container.get("channel_id")) or _text(channel.get("id"))
    ts = _text(container.get("message_ts")) or _text(message.get("ts"))
    if user_id is None or channel_id is None or ts is None:
        raise _bad("payload needs user.id, container.channel_id and container.message_ts")
    name = _text(user.get("name")) or _text(user.get("username")) or user_id
    action_ts = _text(first.get("action_ts")) or ts
    return _Click(parsed, user_id, name, channel_id, ts, action_ts)


async def _edit_message(
    slack: SlackApp, api: SlackWebApi, click: _Click, alert: Alert, *, line: str, now: datetime
) -> None:
    """The clicked message again, as the alert now stands (firing or resolved), its
    buttons replaced by `line` (best effort)."""
    kind: NotificationKind = "resolved" if alert.state == "resolved" else "firing"
    notification = Notification.about(alert, sink=slack.sink, kind=kind, created_at=now)
    edited = {"channel": click.channel, "ts": click.ts, **slack_message([notification], done=line)}
    try:
        async with asyncio.timeout(UPDATE_BUDGET_S):
            await api.call("chat.update", edited, tolerate=_TOLERATED)
    except (SinkError, TimeoutError) as exc:
        log.warning(
            "slack.update_failed",
            sink=slack.sink,
            alert_id=alert.id,
            error=str(exc) or f"no answer within {UPDATE_BUDGET_S:g}s",
            hint="the action is done; only the message still shows its buttons",
        )
