"""Notifications rendered for each sink: webhook JSON, Alertmanager JSON, console lines.

Slack's Block Kit lives in `render_slack`. Pure: no I/O, no clock.

Invariants:
- The webhook body is a public contract (README, "Webhook payload"): keys are only ever added,
  never renamed or removed, and every value is JSON-safe (non-finite numbers become
  null). A notification renders to the same body on every attempt, so a receiver can
  deduplicate by `id` (also sent as `webhook-id`).
- A batch's id is derived from the sorted ids it carries: the same set of notifications
  always gets the same batch id, whatever their order.
- Nothing here adds data that the alert does not carry: the error excerpt is already
  bounded and redacted, and execution inputs never reach an alert.
- A console line is one line: newlines in summaries are folded into spaces.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, timedelta
from typing import Any

from relay.domain.alerts import Alert, ExecutionFacts, FailureCause, Notification
from relay.durations import utc_iso

WEBHOOK_BODY_VERSION = "1"
# Colours for Slack attachments and the console, by severity; resolved is always green.
SEVERITY_HEX = {"critical": "#D92D20", "warning": "#F79009", "info": "#2E90FA"}
RESOLVED_HEX = "#12B76A"
_ANSI = {"critical": "\x1b[1;31m", "warning": "\x1b[33m", "info": "\x1b[36m"}
_ANSI_RESOLVED = "\x1b[32m"
_ANSI_DIM = "\x1b[2m"
_ANSI_RESET = "\x1b[0m"


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def event_type(notification: Notification) -> str:
    """`alert.firing`, `alert.reminder`, `alert.resolved` or `alert.test`."""
    return f"alert.{notification.kind}"


def colour_hex(notification: Notification) -> str:
    if notification.alert.state == "resolved" or notification.kind == "resolved":
        return RESOLVED_HEX
    return SEVERITY_HEX.get(notification.alert.severity, SEVERITY_HEX["info"])


# --- webhook ------------------------------------------------------------------------------


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


def batch_id(notification_ids: Sequence[str]) -> str:
    """The `webhook-id` of a batch: stable for a set of notification ids."""
    digest = hashlib.sha256("\x1f".join(sorted(notification_ids)).encode()).hexdigest()
    return f"msg_batch_{digest[:24]}"


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


# --- Alertmanager -------------------------------------------------------------------------

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
    annotations = {"summary": alert.summary, "description": alert.description}
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


# --- console ------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def console_line(notification: Notification, *, color: bool) -> str:
    """`HH:MM:SSZ CRITICAL firing   rule [source] summary  link` in one line."""
    alert = notification.alert
    resolved = notification.kind == "resolved" or alert.state == "resolved"
    state = {"reminder": "reminder", "test": "test"}.get(notification.kind, alert.state)
    when = notification.created_at.astimezone(UTC).strftime("%H:%M:%SZ")
    severity = f"{alert.severity.upper():<8}"
    parts = [f"{state:<8}", f"{alert.rule} [{alert.source}]", _one_line(alert.summary)]
    link = f"  {alert.link}" if alert.link else ""
    if not color:
        return f"{when} {severity} {' '.join(parts)}{link}"
    tint = _ANSI_RESOLVED if resolved else _ANSI.get(alert.severity, "")
    return (
        f"{_ANSI_DIM}{when}{_ANSI_RESET} {tint}{severity} {parts[0]}{_ANSI_RESET} "
        f"{parts[1]} {parts[2]}{_ANSI_DIM}{link}{_ANSI_RESET}"
    )


__all__ = [
    "RESOLVED_HEX",
    "SEVERITY_HEX",
    "WEBHOOK_BODY_VERSION",
    "alertmanager_alert",
    "batch_id",
    "colour_hex",
    "console_line",
    "event_type",
    "webhook_batch_body",
    "webhook_body",
]
