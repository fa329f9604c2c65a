"""The Alertmanager sink: alerts POSTed to `<url>/api/v2/alerts`.

Invariants:
- One request carries up to `ALERTMANAGER_MAX_BATCH` alerts (the API takes an array):
  Alertmanager does its own grouping and routing, so no `group_wait` here.
- Each alert is labelled `alertname` (the rule), `severity`, `source`, `alert_id` and
  the alert's own labels, plus the sink's configured `labels`, which never replace
  those four. A resolved notification sets `endsAt`.
- Basic auth or a bearer token when configured; neither ever appears in an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime

from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.domain.delivery import DeliveryPolicy
from relay.domain.render import alertmanager_alert
from relay.settings import AlertmanagerSinkSettings
from relay.sinks.base import HttpPoster, delivery_policy

ALERTMANAGER_MAX_BATCH = 100


class AlertmanagerSink:
    def __init__(
        self,
        name: str,
        settings: AlertmanagerSinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._name = name
        self._url = settings.url.rstrip("/") + "/api/v2/alerts"
        self._labels = dict(settings.labels)
        self._headers = {"content-type": "application/json"}
        secrets: list[str] = []
        if settings.basic_auth is not None:
            password = settings.basic_auth.password.get_secret_value()
            pair = f"{settings.basic_auth.username}:{password}".encode()
            credentials = base64.b64encode(pair).decode("ascii")
            self._headers["authorization"] = f"Basic {credentials}"
            secrets += [password, credentials]
        elif settings.bearer_token is not None:
            token = settings.bearer_token.get_secret_value()
            self._headers["authorization"] = f"Bearer {token}"
            secrets.append(token)
        self._policy = delivery_policy(settings, max_batch=ALERTMANAGER_MAX_BATCH)
        self._poster = HttpPoster(
            name,
            timeout_s=settings.timeout.total_seconds(),
            receiver="Alertmanager",
            config_path=f"sinks.{name}.url",
            secrets=secrets,
            now=now,
        )

    def __repr__(self) -> str:
        return f"AlertmanagerSink({self._name!r}, {self._url!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> DeliveryPolicy:
        return self._policy

    @property
    def max_batch(self) -> int:
        return self._policy.max_batch

    def body(self, notifications: Sequence[Notification]) -> bytes:
        alerts = [alertmanager_alert(n, extra_labels=self._labels) for n in notifications]
        return json.dumps(alerts, ensure_ascii=False, allow_nan=False).encode()

    async def send(self, notifications: Sequence[Notification]) -> None:
        if not notifications:
            raise ValueError("nothing to send")
        await self._poster.post(self._url, content=self.body(notifications), headers=self._headers)

    async def aclose(self) -> None:
        await self._poster.aclose()


__all__ = ["ALERTMANAGER_MAX_BATCH", "AlertmanagerSink"]
