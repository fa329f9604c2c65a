"""The Alertmanager sink: alerts POSTed to `<url>/api/v2/alerts`, and their JSON.

Invariants:
- One request carries up to `ALERTMANAGER_MAX_BATCH` alerts (the API takes an array):
  Alertmanager does its own grouping and routing, so no `group_wait` here.
- Each alert is labelled `alertname` (the rule), `severity`, `source`, `alert_id` and
  the alert's own labels (the rule's `labels` and `responder`, the responder's name,
  among them), plus the sink's configured `labels`, which never replace those four.
  Its annotations are the rule's `annotations` and the relay's `summary`,
  `description`, `execution_id`, `error`, `link`, which the rule's never replace. A
  resolved notification sets `endsAt`.
- Basic auth or a bearer token when configured; neither ever appears in an error.
- High availability (`urls:`): Alertmanager's docs ask clients to send every alert to
  every instance of a cluster (the instances deduplicate notifications among
  themselves). One `AlertmanagerSink` talks to one URL; the registry builds one per URL
  as the delivery targets `NAME[host:port]` (`relay.settings.delivery_targets`),
  and dispatch queues every notification once per target with the same id. So each
  instance has its own worker, retries, `Retry-After` pause, rate limit, dead letters
  and replay: an instance that is down holds back no other.
- `alertmanager_alert` is pure: nothing in it adds data the alert does not carry (the
  error excerpt is already bounded and redacted).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.durations import utc_iso
from relay.settings import AlertmanagerSinkSettings
from relay.sinks.base import HttpSink, url_secrets

ALERTMANAGER_MAX_BATCH = 100
# A test alert shows in Alertmanager for this long, then resolves by itself.
_TEST_ALERT_LIFETIME = timedelta(minutes=5)
# How late a reminder may be (a slow cycle, a retried delivery) before Alertmanager
# would let a still-firing windowed alert expire.
_RENEWAL_MARGIN = timedelta(minutes=15)


def alertmanager_alert(
    notification: Notification, *, extra_labels: Mapping[str, str] = {}
) -> dict[str, Any]:
    """One element of the `POST /api/v2/alerts` array.

    Alertmanager identifies an alert by its label set, so `alert_id` is a label: two
    executions failing under the same rule stay two alerts. A firing windowed alert ends
    a margin after its next reminder is due (`renew_by`), so Alertmanager keeps it firing
    between reminders yet expires it if the relay goes away; a per-execution alert, an
    event, carries no `endsAt` (Alertmanager's `resolve_timeout` applies); a resolved
    one ends when it resolved.
    """
    alert = notification.alert
    labels = {**extra_labels, **alert.labels}
    labels |= {
        "alertname": alert.rule,
        "severity": alert.severity,
        "source": alert.source,
        "alert_id": alert.id,
    }
    # Alertmanager treats an empty label value as an absent label.
    labels = {key: value for key, value in labels.items() if value}
    # The rule's annotations first: the relay's own (summary, ...) are never replaced.
    annotations = {key: value for key, value in alert.annotations.items() if value}
    annotations |= {"summary": alert.summary, "description": alert.description}
    if alert.execution is not None:
        annotations["execution_id"] = alert.execution.id
    if alert.cause is not None and alert.cause.error_excerpt:
        annotations["error"] = alert.cause.error_excerpt
    if alert.link:
        annotations["link"] = alert.link
    body: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": utc_iso(alert.started_at),
    }
    if notification.kind == "resolved" or alert.state == "resolved":
        body["endsAt"] = utc_iso(alert.ended_at or notification.created_at)
    elif notification.kind == "test":
        body["endsAt"] = utc_iso(notification.created_at + _TEST_ALERT_LIFETIME)
    elif alert.renew_by is not None:
        body["endsAt"] = utc_iso(alert.renew_by + _RENEWAL_MARGIN)
    if alert.link and alert.link.startswith(("http://", "https://")):
        body["generatorURL"] = alert.link
    return body


def _authorization(settings: AlertmanagerSinkSettings) -> tuple[dict[str, str], list[str]]:
    """The `authorization` header, if any, and the secrets it holds (for scrubbing)."""
    if settings.basic_auth is not None:
        header = settings.basic_auth.header_value
        # The header's variants (`relay.scrub`) hold the password only from 6 characters.
        return {"authorization": header}, [header, settings.basic_auth.password.get_secret_value()]
    if settings.bearer_token is not None:
        token = settings.bearer_token.get_secret_value()
        return {"authorization": f"Bearer {token}"}, [token]
    return {}, []


class AlertmanagerSink(HttpSink):
    def __init__(
        self,
        name: str,
        settings: AlertmanagerSinkSettings,
        *,
        url: str | None = None,
        config_path: str | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        """The sink of one Alertmanager: `url`, one of `settings.endpoints` (by default
        the first, the only one of a sink configured with `url`); `config_path` is the
        setting its errors point at (`sinks.am.urls.1`; by default `sinks.NAME.url`)."""
        url = settings.endpoints[0] if url is None else url
        authorization, secrets = _authorization(settings)
        if "@" in url:  # `user:password@`, sent as basic auth
            secrets += url_secrets(url)
        super().__init__(
            name,
            settings,
            receiver="Alertmanager",
            secrets=secrets,
            now=now,
            config_path=config_path,
            max_batch=ALERTMANAGER_MAX_BATCH,
        )
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._labels = dict(settings.labels)
        self._headers = {"content-type": "application/json", **authorization}

    def body(self, notifications: Sequence[Notification]) -> bytes:
        alerts = [alertmanager_alert(n, extra_labels=self._labels) for n in notifications]
        return json.dumps(alerts, ensure_ascii=False, allow_nan=False).encode()

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        del (
            message_id
        )  # Alertmanager tells alerts apart by their labels; a message has no id of its own.
        if not notifications:
            raise ValueError("nothing to send")
        await self._poster.post(self._url, content=self.body(notifications), headers=self._headers)


__all__ = ["ALERTMANAGER_MAX_BATCH", "AlertmanagerSink", "alertmanager_alert"]
