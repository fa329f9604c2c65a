"""The Slack sink: an incoming webhook, or a bot token posting to a channel.

Invariants:
- Webhook mode posts each message to the incoming-webhook URL; Slack answers 200 `ok`,
  or an HTTP error classified like any other receiver's.
- Bot mode calls the Web API (`api_url`, https://slack.com/api unless a test points it
  elsewhere) with `Authorization: Bearer <token>`. Slack answers HTTP 200 with
  `{"ok": false, "error": ...}` for most refusals: transient error codes are retried,
  every other code (`channel_not_found`, `invalid_auth`, ...) is dead at once.
- In bot mode the first message about an alert is remembered (`MessageRefs`). When the
  alert resolves, a message that was about that alert alone is edited in place
  (`chat.update`) to its resolved form, and a reply is posted in its thread; a reminder
  is posted in the thread and broadcast to the channel. When the first message is not
  known (a digest, or the relay restarted with in-memory refs) a new message is posted.
- With `signing_secret` too, a single firing alert's message carries the Acknowledge /
  Silence buttons, whose clicks `relay.http.slack_actions` handles.
- The token and webhook URL never appear in an error, a log event or a repr.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.settings import SlackSinkSettings
from relay.sinks.base import HttpSink, url_secrets
from relay.sinks.slack_api import SlackWebApi
from relay.sinks.slack_blocks import slack_message, slack_thread_reply

# A digest lists at most `DIGEST_SHOWN` alerts and counts the rest ("and N more"), so
# one message may acknowledge a large burst.
SLACK_MAX_BATCH = 1000
_REFS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where the first message about an alert was posted."""

    channel: str
    ts: str
    single: bool  # the message was about this alert alone (not a digest)


class MessageRefs(Protocol):
    """Remembers the first message of each alert (bot mode)."""

    async def get(self, alert_id: str) -> MessageRef | None: ...

    async def put(self, alert_id: str, ref: MessageRef) -> None: ...


class MemoryMessageRefs:
    """The most recent `limit` refs, in memory: lost on restart, after which a resolve
    is posted as a new message instead of an edit."""

    def __init__(self, *, limit: int = _REFS_KEPT) -> None:
        self._limit = limit
        self._refs: OrderedDict[str, MessageRef] = OrderedDict()

    async def get(self, alert_id: str) -> MessageRef | None:
        return self._refs.get(alert_id)

    async def put(self, alert_id: str, ref: MessageRef) -> None:
        self._refs[alert_id] = ref
        self._refs.move_to_end(alert_id)
        while len(self._refs) > self._limit:
            self._refs.popitem(last=False)


class SlackSink(HttpSink):
    def __init__(
        self,
        name: str,
        settings: SlackSinkSettings,
        *,
        refs: MessageRefs | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        secrets = [] if settings.bot_token is None else [settings.bot_token.get_secret_value()]
        if settings.signing_secret is not None:
            secrets.append(settings.signing_secret.get_secret_value())
        if settings.webhook_url is not None:
            secrets += url_secrets(settings.webhook_url.get_secret_value())
        super().__init__(
            name,
            settings,
            receiver="Slack",
            secrets=secrets,
            now=now,
            config_key="webhook_url" if settings.webhook_url is not None else "bot_token",
            group_wait_s=settings.group_wait.total_seconds(),
            max_batch=SLACK_MAX_BATCH,
        )
        self._webhook_url = settings.webhook_url
        self._channel = settings.channel or ""
        self._api = (
            None
            if settings.bot_token is None
            else SlackWebApi(
                name,
                token=settings.bot_token,
                channel=self._channel,
                api_url=settings.api_url,
                poster=self._poster,
            )
        )
        self._actions = settings.takes_actions
        self._refs = refs if refs is not None else MemoryMessageRefs()
        self._mentions: dict[str, tuple[str, ...]] = {
            severity: tuple(m) for severity, m in settings.mentions.items()
        }

    def __repr__(self) -> str:
        mode = "webhook" if self._webhook_url is not None else f"bot, channel {self._channel}"
        return f"SlackSink({self._name!r}, {mode})"

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        del (
            message_id
        )  # Slack messages are found again by alert (`relay.sinks.slack_refs`), not by id.
        if not notifications:
            raise ValueError("nothing to send")
        if self._webhook_url is not None:
            body = json.dumps(slack_message(notifications, mentions=self._mentions)).encode()
            url = self._webhook_url.get_secret_value()
            await self._poster.post(url, content=body, headers=_JSON)
            return
        if len(notifications) == 1 and await self._follow_up(notifications[0]):
            return
        message = slack_message(notifications, mentions=self._mentions, actions=self._actions)
        answer = await self._call("chat.postMessage", message)
        ref = MessageRef(
            str(answer.get("channel") or self._channel), str(answer.get("ts", "")), False
        )
        if not ref.ts:
            return
        single = len(notifications) == 1
        for n in notifications:
            if n.kind in ("firing", "test"):
                await self._refs.put(n.alert.id, MessageRef(ref.channel, ref.ts, single))

    async def _follow_up(self, notification: Notification) -> bool:
        """Resolve or remind in the thread of the alert's first message; False when there
        is none to follow up on (the caller then posts a new message)."""
        if notification.kind not in ("resolved", "reminder"):
            return False
        ref = await self._refs.get(notification.alert.id)
        if ref is None:
            return False
        if notification.kind == "resolved" and ref.single:
            edited = {"channel": ref.channel, "ts": ref.ts, **slack_message([notification])}
            # The original may be gone (deleted, too old to edit): the reply still says it.
            await self._call(
                "chat.update", edited, tolerate=("message_not_found", "cant_update_message")
            )
        reply = {
            "channel": ref.channel,
            "thread_ts": ref.ts,
            **slack_thread_reply(notification, mentions=self._mentions),
        }
        if notification.kind == "reminder":
            reply["reply_broadcast"] = True
        await self._call("chat.postMessage", reply)
        return True

    async def _call(
        self, method: str, payload: dict[str, Any], *, tolerate: Sequence[str] = ()
    ) -> dict[str, Any]:
        assert self._api is not None
        return await self._api.call(method, payload, tolerate=tolerate)


_JSON = {"content-type": "application/json; charset=utf-8"}

__all__ = ["SLACK_MAX_BATCH", "MemoryMessageRefs", "MessageRef", "MessageRefs", "SlackSink"]
