"""The webhook sink: JSON over HTTPS, signed per Standard Webhooks; and that JSON.

Invariants:
- The body is a public contract (README, "Webhook payload"): keys are only ever added,
  never renamed or removed, and every value is JSON-safe (non-finite numbers become
  null). A notification renders to the same body on every attempt, so a receiver can
  deduplicate by `id`. Nothing in it is data the alert does not carry: the error
  excerpt is already bounded and redacted, and execution inputs never reach an alert.
- `webhook-id` is the notification id (or, for a batch, an id derived from the sorted
  notification ids it carries: the same set always gets the same id, whatever their
  order), so every attempt of the same message has the same id and receivers can
  deduplicate retries.
- `webhook-timestamp` is the time of the attempt (Unix seconds), and
  `webhook-signature` is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` over the
  exact bytes sent, with the key decoded from the `whsec_` secret. Without a secret the
  three headers are still sent, minus the signature.
- Configured headers are added to every request; the relay's own headers cannot be
  replaced (the settings refuse them).
- With `max_alerts_per_request: 1` (the default) the body is one notification; above
  one, it is always the batch envelope, even when a batch holds a single notification,
  so a receiver sees one shape per configuration (README, "Webhook payload").
- A route group's message (`relay.domain.grouping`) is always the group envelope
  (`"type": "alert.group"`), whatever `max_alerts_per_request` and even for one
  notification: it names the group, the count and every alert and notification id it
  covers. Its `webhook-id` (and body `id`) is the message's stamped id
  (`OutboxItem.message_id`, `group_message_id` of its members at the first attempt),
  so every retry has the same id, even one that lost a member settled meanwhile
  (silenced, or past `max_age`): its `notification_ids` say which it still covers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from relay.clock import utcnow
from relay.domain.alerts import Alert, ExecutionFacts, FailureCause, Notification
from relay.domain.grouping import (
    GROUP_MESSAGE_MAX,
    group_digest,
    group_message_id,
    message_group,
)
from relay.durations import utc_iso
from relay.settings import WebhookSinkSettings
from relay.sinks.base import HttpSink, url_secrets
from relay.sinks.words import batch_id

WEBHOOK_BODY_VERSION = "1"


# --- body ---------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def event_type(notification: Notification) -> str:
    """`alert.firing`, `alert.reminder`, `alert.resolved` or `alert.test`."""
    return f"alert.{notification.kind}"


def _alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity,
        "state": alert.state,
        "source": alert.source,
        "summary": alert.summary,
        "description": alert.description,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "started_at": utc_iso(alert.started_at),
        "ended_at": utc_iso(alert.ended_at),
        "group": None if alert.group is None else dict(alert.group),
        "value": _number(alert.value),
    }


def _execution_json(facts: ExecutionFacts | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        "id": facts.id,
        "type": facts.kind,
        "status": facts.status,
        "responder_id": facts.responder_id,
        "agent_id": facts.agent_id,
        "workflow_id": facts.workflow_id,
        "parent_id": facts.parent_id,
        "origin_type": facts.origin_type,
        "credits_used": _number(facts.credits_used),
        "started_at": utc_iso(facts.started_at),
        "ended_at": utc_iso(facts.ended_at),
        "duration_s": _number(facts.duration_s),
    }


def _cause_json(cause: FailureCause | None) -> dict[str, Any] | None:
    if cause is None:
        return None
    return {
        "step_label": cause.step_label,
        "step_type": cause.step_type,
        "tool_type": cause.tool_type,
        "node_type": cause.node_type,
        "model": cause.model,
        "error_excerpt": cause.error_excerpt,
        "chain": list(cause.chain),
    }


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The JSON body of one notification (see README, "Webhook payload")."""
    alert = notification.alert
    return {
        "version": WEBHOOK_BODY_VERSION,
        "id": notification.id,
        "type": event_type(notification),
        "timestamp": utc_iso(notification.created_at),
        "alert": _alert_json(alert),
        "execution": _execution_json(alert.execution),
        "cause": _cause_json(alert.cause),
        "links": {"execution": alert.link} if alert.link else {},
    }


def webhook_group_body(
    notifications: Sequence[Notification], *, message_id: str | None = None
) -> dict[str, Any]:
    """The JSON body of a route group's message (`"type": "alert.group"`): what the
    group is, how many it covers and which (every alert and notification id), and each
    notification's own body. Its `id` is the message's stamped `message_id`, or one
    derived from the members when it has none yet."""
    digest = group_digest(notifications)
    group = digest.group
    ids = [n.id for n in notifications]
    return {
        "version": WEBHOOK_BODY_VERSION,
        "id": message_id or group_message_id(group.key, ids),
        "type": "alert.group",
        "timestamp": utc_iso(max(n.created_at for n in notifications)),
        "summary": digest.title,
        "group": {
            "key": group.key,
            "route": group.route,
            "values": dict(group.values),
            "count": len(notifications),
            "alert_ids": list(dict.fromkeys(n.alert.id for n in notifications)),
            "notification_ids": ids,
        },
        "notifications": [webhook_body(n) for n in notifications],
    }


def webhook_batch_body(notifications: Sequence[Notification]) -> dict[str, Any]:
    """The JSON body carrying several notifications in one request."""
    if not notifications:
        raise ValueError("a batch needs at least one notification")
    return {
        "version": WEBHOOK_BODY_VERSION,
        "id": batch_id([n.id for n in notifications]),
        "type": "alert.batch",
        "timestamp": utc_iso(max(n.created_at for n in notifications)),
        "notifications": [webhook_body(n) for n in notifications],
    }


def webhook_id(
    notifications: Sequence[Notification], *, batched: bool, message_id: str | None = None
) -> str:
    """The `webhook-id` of the request carrying `notifications` (module invariants):
    a route group's message's stamped `message_id` (or its members' id), a batch's id,
    or the one notification's id."""
    group = message_group(notifications)
    if group is not None:
        return message_id or group_message_id(group.key, [n.id for n in notifications])
    if batched:
        return batch_id([n.id for n in notifications])
    return notifications[0].id


# --- sink ---------------------------------------------------------------------------------


def sign(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `v1` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def encode_body(body: Any) -> bytes:
    """Compact UTF-8 JSON; non-finite numbers are refused (the renderer never makes any)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class WebhookSink(HttpSink):
    """POSTs notifications to one URL."""

    def __init__(
        self,
        name: str,
        settings: WebhookSinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        url = settings.url.get_secret_value()
        headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        secrets = [*url_secrets(url), *headers.values()]
        if settings.secret is not None:
            secrets.append(settings.secret.get_secret_value())
        super().__init__(
            name,
            settings,
            receiver="the webhook receiver",
            secrets=secrets,
            now=now,
            group_wait_s=settings.group_wait.total_seconds(),
            max_batch=settings.max_alerts_per_request,
        )
        self._url = url
        self._key = settings.signing_key
        self._batched = settings.batched
        self._headers = headers
        self._now = now

    def request(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the request carrying `notifications`; `message_id`:
        a route group's message's stamped id (see `Sink.send`)."""
        if not notifications:
            raise ValueError("nothing to send")
        group = message_group(notifications)
        limit = self.max_batch if group is None else GROUP_MESSAGE_MAX
        if len(notifications) > limit:
            raise ValueError(f"{len(notifications)} notifications exceed {limit} a message")
        msg_id = webhook_id(notifications, batched=self._batched, message_id=message_id)
        if group is not None:
            body = encode_body(webhook_group_body(notifications, message_id=msg_id))
        elif self._batched:
            body = encode_body(webhook_batch_body(notifications))
        else:
            body = encode_body(webhook_body(notifications[0]))
        timestamp = math.floor(self._now().timestamp())
        headers = {
            **self._headers,
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(
                self._key, msg_id=msg_id, timestamp=timestamp, body=body
            )
        return body, headers

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        body, headers = self.request(notifications, message_id=message_id)
        await self._poster.post(self._url, content=body, headers=headers)


__all__ = [
    "WEBHOOK_BODY_VERSION",
    "WebhookSink",
    "batch_id",
    "encode_body",
    "event_type",
    "sign",
    "webhook_batch_body",
    "webhook_body",
    "webhook_group_body",
    "webhook_id",
]
