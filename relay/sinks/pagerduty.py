"""The PagerDuty sink: Events API v2 (`POST /v2/enqueue`), one event a request; and
those events.

Invariants:
- An alert is one PagerDuty alert: its `dedup_key` is the alert id (at most 255
  characters), so a firing notification triggers it, a reminder triggers it again
  (PagerDuty folds it into the open incident, or opens a new one if someone resolved
  the old one while the relay still sees it firing), and a resolved notification
  resolves it. A per-execution alert never resolves by itself: someone resolves it in
  PagerDuty. A test notification triggers a fresh alert at severity `info`.
- A route group's message is one event per notification, each its own `dedup_key`, sent
  in order within one attempt: each incident is resolvable on its own. When one of them
  fails the whole message is retried; the events PagerDuty already took are skipped
  (remembered in memory), and after a restart sent again and deduplicated by their
  keys, so a retry never doubles an incident. The whole message is bounded by the
  sink's `timeout` (the worker's lease is sized by it): what is left when it runs out
  is retried.
- `rate_limit` paces events, not messages: the sink waits between events for its token
  bucket (`relay.domain.delivery.TokenBucket`).
- Every trigger obeys the Events API v2 rules: `payload.summary` 1-1024 characters,
  `payload.source` non-empty, `payload.severity` one of critical/error/warning/info
  (`SEVERITY`), `timestamp` ISO 8601, `custom_details` an object, `links` a list of
  `{href, text}` with http(s) hrefs. A resolve carries only the routing key, the action
  and the dedup key.
- 202 is delivered; 400 (an invalid event) is dead at once with PagerDuty's answer kept,
  bounded and scrubbed; 429 and 5xx are retried, honouring `Retry-After`
  (`relay.sinks.base.HttpPoster`). The routing key never appears in an error or a log.
- `pagerduty_event` is pure: nothing in it is data the alert does not carry (the error
  excerpt is already bounded and redacted).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from relay.clock import utcnow
from relay.domain.alerts import Alert, Notification
from relay.domain.delivery import TokenBucket
from relay.domain.redact import bound
from relay.durations import format_credits, format_span_s, utc_iso
from relay.errors import SinkError
from relay.settings import PagerDutySinkSettings
from relay.sinks.base import HttpSink, url_secrets
from relay.sinks.words import alert_links, http_link, is_resolved, step_kinds
from relay.vocab import Severity

# PagerDuty's severities for ours; a value of ours without one would be `error`.
SEVERITY: dict[Severity, str] = {"critical": "critical", "warning": "warning", "info": "info"}
SUMMARY_MAX_CHARS = 1024
DEDUP_KEY_MAX_CHARS = 255
# PagerDuty limits a whole event to 512 KB; these keep one far below it.
_TEXT_MAX_CHARS = 4000
_FIELD_MAX_CHARS = 255
CLIENT = "zaia-relay"


def event_action(notification: Notification) -> str:
    """`resolve` for a resolved alert, `trigger` for everything else."""
    return "resolve" if is_resolved(notification) else "trigger"


def _source(alert: Alert) -> str:
    """PagerDuty's "affected system": the relay's source, and the responder when known."""
    responder = alert.responder
    return bound(f"{alert.source}/{responder}" if responder else alert.source, _FIELD_MAX_CHARS)


def custom_details(notification: Notification) -> dict[str, Any]:
    """What an on-call person needs beyond the summary, as PagerDuty shows it."""
    alert = notification.alert
    details: dict[str, Any] = {
        "rule": alert.rule,
        "severity": alert.severity,
        "notification": notification.kind,
        "alert_id": alert.id,
        "description": bound(alert.description, _TEXT_MAX_CHARS),
    }
    if alert.responder:
        details["responder"] = alert.responder
    facts = alert.execution
    if facts is not None:
        details |= {
            "execution_id": facts.id,
            "execution_type": facts.kind,
            "status": facts.status,
            "responder_id": facts.responder_id,
            "credits": format_credits(facts.credits_used),
            "duration": format_span_s(facts.duration_s),
        }
        for key, value in (("agent_id", facts.agent_id), ("workflow_id", facts.workflow_id)):
            if value:
                details[key] = value
    cause = alert.cause
    if cause is not None:
        if cause.step_label or cause.step_type:
            details["failing_step"] = cause.step_label or "unnamed step"
            if kinds := step_kinds(cause):
                details["step_type"] = kinds
        if cause.error_excerpt:
            details["error"] = cause.error_excerpt
        if len(cause.chain) > 1:
            details["chain"] = " -> ".join(cause.chain)
    if alert.group:
        details["group"] = dict(alert.group)
    if alert.value is not None and math.isfinite(alert.value):
        details["value"] = alert.value
    if alert.rule_labels:
        details["labels"] = alert.rule_labels
    if alert.annotations:
        details["annotations"] = dict(alert.annotations)
    if alert.ended_at is not None:
        details["resolved_at"] = utc_iso(alert.ended_at)
    return details


def _links(alert: Alert) -> list[dict[str, str]]:
    return [{"href": url, "text": text} for text, url in alert_links(alert)]


def pagerduty_event(notification: Notification, *, routing_key: str) -> dict[str, Any]:
    """The Events API v2 event of one notification (module invariants)."""
    alert = notification.alert
    action = event_action(notification)
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": alert.id[:DEDUP_KEY_MAX_CHARS],
    }
    if action == "resolve":
        return event
    summary = " ".join(alert.summary.split()) or alert.rule
    if notification.kind == "reminder":
        summary = f"[still firing] {summary}"
    payload: dict[str, Any] = {
        "summary": bound(summary, SUMMARY_MAX_CHARS),
        "source": _source(alert),
        "severity": SEVERITY.get(alert.severity, "error"),
        "timestamp": utc_iso(alert.started_at),
        "group": bound(alert.source, _FIELD_MAX_CHARS),
        "class": bound(alert.rule, _FIELD_MAX_CHARS),
        "custom_details": custom_details(notification),
    }
    if alert.responder:
        payload["component"] = bound(alert.responder, _FIELD_MAX_CHARS)
    event["payload"] = payload
    event["client"] = CLIENT
    if (link := http_link(alert.link)) is not None:
        event["client_url"] = link
    links = _links(alert)
    if links:
        event["links"] = links
    return event


class PagerDutySink(HttpSink):
    """Sends each notification as one Events API v2 event."""

    def __init__(
        self,
        name: str,
        settings: PagerDutySinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`sleep` waits between paced events (tests pass one that moves their clock)."""
        key = settings.routing_key.get_secret_value()
        secrets = [key]
        if "@" in settings.api_url:
            secrets += url_secrets(settings.api_url)
        super().__init__(
            name,
            settings,
            receiver="PagerDuty",
            secrets=secrets,
            now=now,
            config_key="routing_key",
        )
        self._key = key
        self._url = settings.api_url
        # Events PagerDuty took from a message that then failed part-way: its retry skips
        # them rather than spend the integration's rate limit again (if forgotten, on
        # restart, sending them again is harmless: PagerDuty deduplicates).
        self._taken: OrderedDict[str, None] = OrderedDict()
        self._now = now
        self._sleep = sleep
        # `rate_limit` counts PagerDuty events (what its integration limits), not the
        # worker's messages: a route group's message is up to 100 events.
        rate_per_s = self.policy.rate_per_s
        self._bucket = (
            None
            if rate_per_s is None
            else TokenBucket.full(rate_per_s=rate_per_s, capacity=self.policy.burst, now=now())
        )

    def bodies(self, notifications: Sequence[Notification]) -> list[bytes]:
        """One request body an event, in the message's order."""
        return [
            json.dumps(
                pagerduty_event(n, routing_key=self._key), ensure_ascii=False, allow_nan=False
            ).encode()
            for n in notifications
        ]

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        del message_id  # Each event's `dedup_key` (the alert id) is what PagerDuty deduplicates by.
        if not notifications:
            raise ValueError("nothing to send")
        ids = [n.id for n in notifications]
        pending = [
            (notification_id, body)
            for notification_id, body in zip(ids, self.bodies(notifications), strict=True)
            if notification_id not in self._taken
        ]
        timeout_s = self.policy.timeout_s
        sent = 0
        failed: SinkError | None = None
        try:
            # The worker leases a message for one timeout: the whole message, paced or
            # not, fits in it; what was taken is kept, so the retry goes on from there.
            async with asyncio.timeout(timeout_s):
                for notification_id, body in pending:
                    await self._paced()
                    await self._poster.post(self._url, content=body, headers=_HEADERS)
                    sent += 1
                    self._taken[notification_id] = None
                    while len(self._taken) > _TAKEN_KEPT:
                        self._taken.popitem(last=False)
        except TimeoutError:
            failed = SinkError(
                self._name,
                f"sent {sent} of {len(pending)} events within the {timeout_s:g}s timeout; "
                "the rest on the next attempt, retrying with backoff",
                retryable=True,
            )
        if failed is not None:
            raise failed
        for notification_id in ids:  # delivered whole: nothing left to skip
            self._taken.pop(notification_id, None)

    async def _paced(self) -> None:
        """Wait until the rate limit allows one more event, and count it."""
        if self._bucket is None:
            return
        now = self._now()
        ready_at = self._bucket.ready_at(now)
        if ready_at > now:
            await self._sleep((ready_at - now).total_seconds())
        # Never before `ready_at`, whatever the clock says after the sleep.
        self._bucket = self._bucket.take(max(self._now(), ready_at))


_HEADERS = {"content-type": "application/json"}
_TAKEN_KEPT = 10_000

__all__ = ["SEVERITY", "PagerDutySink", "custom_details", "event_action", "pagerduty_event"]
