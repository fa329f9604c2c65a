"""The words of an e-mail about notifications, shared by its plain-text and HTML parts:
the facts of an alert, its links, its subject, its Message-ID, what a digest lists.

Pure: no I/O, no clock.

Invariants:
- `message_id` is `<ID@zaia-relay>` with ID the notification id, or for a digest the
  id of the message (`group_message_id` for a route group, `batch_id` for a burst):
  every attempt of the same message has the same Message-ID.
- `header_text` folds text to one printable line: text taken from alerts can never
  start a header of its own.
- `links` are only ever http(s) URLs: the execution (or alert) link and the runbook.
- A route group's digest lists what `group_digest` shows (its first `GROUP_SHOWN`); a
  burst's lists its first `DIGEST_SHOWN`; both end with how many more.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.domain.alerts import Alert, Notification
from relay.domain.grouping import group_digest, group_message_id, message_group
from relay.domain.redact import bound
from relay.domain.render_text import group_text
from relay.durations import format_credits, format_span_s, utc_iso
from relay.sinks.words import (
    RESOLVED_HEX,
    SEVERITY_HEX,
    alert_links,
    batch_id,
    burst_title,
    state_word,
    step_words,
    worst_firing,
)
from relay.vocab import RUNBOOK_ANNOTATION

MESSAGE_ID_DOMAIN = "zaia-relay"
DIGEST_SHOWN = 25
SUBJECT_CHARS = 200
DIGEST_ERROR_CHARS = 160


def colour(notifications: Sequence[Notification]) -> str:
    worst = worst_firing(notifications)
    return RESOLVED_HEX if worst is None else SEVERITY_HEX.get(worst, SEVERITY_HEX["info"])


def header_text(text: str) -> str:
    """`text` on one line: every run of whitespace (CR, LF, tabs) becomes one space."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def message_id(notifications: Sequence[Notification], *, stamped_id: str | None = None) -> str:
    """The `Message-ID` of the message carrying `notifications` (module invariants): the
    id the outbox stamped on it when it has one (a retry keeps it, even with fewer
    members), else derived from its notifications."""
    group = message_group(notifications)
    ids = [n.id for n in notifications]
    if stamped_id is not None:
        local = stamped_id
    elif group is not None:
        local = group_message_id(group.key, ids)
    elif len(notifications) > 1:
        local = batch_id(ids)
    else:
        local = ids[0]
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def subject(notifications: Sequence[Notification], *, prefix: str) -> str:
    """`[zaia-relay] FIRING [critical] execution-failed (Sales Qualifier): summary`; for
    a digest its count (or a route group's title)."""
    if len(notifications) == 1:
        n = notifications[0]
        alert = n.alert
        who = f" ({alert.responder})" if alert.responder else ""
        text = f"{state_word(n)} [{alert.severity}] {alert.rule}{who}: {alert.summary}"
    elif message_group(notifications) is not None:
        digest = group_digest(notifications)
        text = f"[{worst_word(notifications)}] {digest.title}"
    else:
        text = f"[{worst_word(notifications)}] {burst_title(notifications)}"
    return bound(header_text(f"{prefix} {text}" if prefix else text), SUBJECT_CHARS)


def worst_word(notifications: Sequence[Notification]) -> str:
    """The worst severity still firing, or `resolved` when none is."""
    return worst_firing(notifications) or "resolved"


def facts(notification: Notification) -> list[tuple[str, str]]:
    """The facts table of one alert: (label, value) rows, for both parts."""
    alert = notification.alert
    rows = [
        ("Status", f"{state_word(notification)} · {alert.severity}"),
        ("Rule", alert.rule),
        ("Source", alert.source),
    ]
    if alert.responder:
        rows.append(("Responder", alert.responder))
    execution = alert.execution
    if execution is not None:
        rows.append(("Execution", f"{execution.kind} {execution.id} ({execution.status})"))
        if execution.agent_id:
            rows.append(("Agent", execution.agent_id))
        if execution.workflow_id:
            rows.append(("Workflow", execution.workflow_id))
        rows.append(("Credits", format_credits(execution.credits_used)))
        rows.append(("Duration", format_span_s(execution.duration_s)))
    cause = alert.cause
    if (step := step_words(cause)) is not None:
        rows.append(("Failing step", step))
    if cause is not None and len(cause.chain) > 1:
        rows.append(("Via", " → ".join(cause.chain)))
    if alert.group:
        rows.append(("Group", _group_words(alert)))
    if alert.value is not None:
        rows.append(("Value", f"{alert.value:g}"))
    rows.append(("Started", utc_iso(alert.started_at)))
    if alert.ended_at is not None:
        rows.append(("Resolved", utc_iso(alert.ended_at)))
    rows += [(f"Label {k}", v) for k, v in alert.rule_labels.items()]
    rows += [(k, v) for k, v in alert.annotations.items() if k != RUNBOOK_ANNOTATION]
    return rows


def _group_words(alert: Alert) -> str:
    group = dict(sorted((alert.group or {}).items()))
    name, responder_id = alert.labels.get("responder"), group.get("responder_id")
    return group_text(group, {responder_id: name} if name and responder_id else {})


def links(alert: Alert) -> list[tuple[str, str]]:
    """(label, URL) of the execution (or alert) link and the runbook, http(s) only."""
    return alert_links(alert)


def error_excerpt(alert: Alert) -> str | None:
    return alert.cause.error_excerpt if alert.cause is not None else None


def short_error(alert: Alert) -> str | None:
    """The error excerpt on one line, shortened for a digest's entry."""
    error = error_excerpt(alert)
    return bound(header_text(error), DIGEST_ERROR_CHARS) if error else None


def digest_members(notifications: Sequence[Notification]) -> tuple[list[Notification], str]:
    """The notifications a digest lists, and its "and N more" line ("" when none)."""
    if message_group(notifications) is not None:
        digest = group_digest(notifications)
        shown, hidden = list(digest.shown), digest.hidden
    else:
        shown = list(notifications[:DIGEST_SHOWN])
        hidden = len(notifications) - len(shown)
    if not hidden:
        return shown, ""
    return shown, f"…and {hidden} more: the relay's status page and /api/v1/alerts list them all."


def message_title(notifications: Sequence[Notification]) -> str:
    if len(notifications) == 1:
        return notifications[0].alert.summary
    if message_group(notifications) is not None:
        digest = group_digest(notifications)
        return f"{digest.title} (route {digest.group.route})"
    return burst_title(notifications)


__all__ = [
    "DIGEST_SHOWN",
    "MESSAGE_ID_DOMAIN",
    "burst_title",
    "colour",
    "digest_members",
    "error_excerpt",
    "facts",
    "header_text",
    "links",
    "message_id",
    "message_title",
    "short_error",
    "subject",
    "worst_word",
]
