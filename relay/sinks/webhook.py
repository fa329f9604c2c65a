"""The webhook sink: JSON over HTTPS, signed per Standard Webhooks.

Invariants:
- `webhook-id` is the notification id (or, for a batch, an id derived from the sorted
  notification ids it carries), so every attempt of the same message has the same id
  and receivers can deduplicate retries.
- `webhook-timestamp` is the time of the attempt (Unix seconds), and
  `webhook-signature` is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` over the
  exact bytes sent, with the key decoded from the `whsec_` secret. Without a secret the
  three headers are still sent, minus the signature.
- Configured headers are added to every request; the relay's own headers cannot be
  replaced (the settings refuse them).
- With `max_alerts_per_request: 1` (the default) the body is one notification; above
  one, it is always the batch envelope, even when a batch holds a single notification,
  so a receiver sees one shape per configuration (README, "Webhook payload").
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
from relay.domain.alerts import Notification
from relay.domain.delivery import DeliveryPolicy
from relay.domain.render import batch_id, webhook_batch_body, webhook_body
from relay.settings import WebhookSinkSettings
from relay.sinks.base import HttpPoster, delivery_policy, url_secrets


def sign(key: bytes, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks `v1` signature of one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode('ascii')}"


def encode_body(body: Any) -> bytes:
    """Compact UTF-8 JSON; non-finite numbers are refused (the renderer never makes any)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


class WebhookSink:
    """POSTs notifications to one URL."""

    def __init__(
        self,
        name: str,
        settings: WebhookSinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._name = name
        self._url = settings.url.get_secret_value()
        self._key = settings.signing_key
        self._batched = settings.max_alerts_per_request > 1
        self._headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        self._policy = delivery_policy(
            settings,
            group_wait_s=settings.group_wait.total_seconds(),
            max_batch=settings.max_alerts_per_request,
        )
        secrets = [*url_secrets(self._url), *self._headers.values()]
        if settings.secret is not None:
            secrets.append(settings.secret.get_secret_value())
        self._now = now
        self._poster = HttpPoster(
            name,
            timeout_s=settings.timeout.total_seconds(),
            receiver="the webhook receiver",
            config_path=f"sinks.{name}.url",
            secrets=secrets,
            now=now,
        )

    def __repr__(self) -> str:
        return f"WebhookSink({self._name!r})"  # never the URL: it can carry a token

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> DeliveryPolicy:
        return self._policy

    @property
    def max_batch(self) -> int:
        return self._policy.max_batch

    def request(self, notifications: Sequence[Notification]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the request carrying `notifications`."""
        if not notifications:
            raise ValueError("nothing to send")
        if len(notifications) > self.max_batch:
            raise ValueError(f"{len(notifications)} notifications exceed max_batch")
        if self._batched:
            msg_id = batch_id([n.id for n in notifications])
            body = encode_body(webhook_batch_body(notifications))
        else:
            msg_id = notifications[0].id
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

    async def send(self, notifications: Sequence[Notification]) -> None:
        body, headers = self.request(notifications)
        await self._poster.post(self._url, content=body, headers=headers)

    async def aclose(self) -> None:
        await self._poster.aclose()


__all__ = ["WebhookSink", "encode_body", "sign"]
