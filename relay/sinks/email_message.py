"""Notifications as e-mail: one `multipart/alternative` message, plain text and HTML.

Pure: no I/O, no clock (`now` is the `Date`).

Invariants:
- `Message-ID` is `<ID@zaia-relay>` with ID the notification id, or for a digest the
  id of the message (`group_message_id` for a route group, `batch_id` for a burst), so
  every attempt of the same message has the same Message-ID and a retry that reached
  the mailbox twice is recognisable. A resolve or a reminder is `In-Reply-To` its
  alert's firing message, so mail clients thread them.
- Header text taken from alerts is folded to one line (`_header_text`): a summary or
  an error holding CR/LF cannot start a header of its own. The `email` package refuses
  CR/LF in a header value as a second guard. Recipients are the configured ones only.
- The HTML part escapes every text taken from alerts (`html.escape`), uses inline
  styles only (mail clients drop `<style>` and scripts) and no images: a severity
  colour bar, the facts table, the error excerpt in `<pre>`, links to the execution
  and the runbook, which are only ever http(s) URLs.
- One notification renders in detail; several render as one digest: a route group's
  (`group_digest`: its title, its first `GROUP_SHOWN`, "and N more"), or a burst's
  (counted by severity, the first `DIGEST_SHOWN` listed, then "and N more").
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from relay import __version__
from relay.domain.alerts import Alert, Notification, notification_id
from relay.domain.grouping import group_digest, group_message_id, message_group
from relay.domain.redact import bound
from relay.domain.render_text import group_text
from relay.durations import format_credits, format_span_s, utc_iso
from relay.sinks.slack_blocks import (
    RESOLVED_HEX,
    SEVERITY_HEX,
    is_resolved,
    runbook_url,
    state_word,
)
from relay.sinks.webhook import batch_id
from relay.vocab import RUNBOOK_ANNOTATION

MESSAGE_ID_DOMAIN = "zaia-relay"
DIGEST_SHOWN = 25
SUBJECT_CHARS = 200
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif"
_MUTED = "color:#667085;font-size:12px"


# --- words ------------------------------------------------------------------------------


def _colour(notifications: Sequence[Notification]) -> str:
    firing = [n.alert.severity for n in notifications if not is_resolved(n)]
    if not firing:
        return RESOLVED_HEX
    return SEVERITY_HEX.get(min(firing, key=_SEVERITY_ORDER.__getitem__), SEVERITY_HEX["info"])


def _header_text(text: str) -> str:
    """`text` on one line: every run of whitespace (CR, LF, tabs) becomes one space."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _http_url(url: str | None) -> str | None:
    return url if url and url.startswith(("http://", "https://")) else None


def message_id(notifications: Sequence[Notification]) -> str:
    """The `Message-ID` of the message carrying `notifications` (module invariants)."""
    group = message_group(notifications)
    ids = [n.id for n in notifications]
    if group is not None:
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
        worst = "resolved" if all(map(is_resolved, notifications)) else digest.severity
        text = f"[{worst}] {digest.title}"
    else:
        text = _burst_title(notifications)
    return bound(_header_text(f"{prefix} {text}" if prefix else text), SUBJECT_CHARS)


def _burst_title(notifications: Sequence[Notification]) -> str:
    counts = Counter(n.alert.severity for n in notifications if not is_resolved(n))
    resolved = sum(1 for n in notifications if is_resolved(n))
    parts = [f"{counts[s]} {s}" for s in sorted(counts, key=_SEVERITY_ORDER.__getitem__)]
    if resolved:
        parts.append(f"{resolved} resolved")
    worst = min(counts, key=_SEVERITY_ORDER.__getitem__) if counts else "resolved"
    return f"[{worst}] {len(notifications)} alerts: {', '.join(parts)}"


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
    if cause is not None and (cause.step_label or cause.step_type):
        kinds = [k for k in (cause.step_type, cause.tool_type, cause.node_type, cause.model) if k]
        step = cause.step_label or "unnamed step"
        rows.append(("Failing step", f"{step} ({', '.join(kinds)})" if kinds else step))
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


def _links(alert: Alert) -> list[tuple[str, str]]:
    """(label, URL) of the execution (or alert) link and the runbook, http(s) only."""
    found = []
    link = _http_url(alert.link)
    if link is not None:
        found.append(("Open execution" if alert.execution else "Open", link))
    runbook = _http_url(runbook_url(alert))
    if runbook is not None:
        found.append(("Runbook", runbook))
    return found


def _error(alert: Alert) -> str | None:
    return alert.cause.error_excerpt if alert.cause is not None else None


# --- plain text -------------------------------------------------------------------------


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _text_alert(notification: Notification) -> list[str]:
    alert = notification.alert
    rows = facts(notification)
    width = max(len(label) for label, _ in rows) + 2
    lines = [alert.summary, ""]
    lines += [f"{label + ':':<{width}}{_header_text(value)}" for label, value in rows]
    error = _error(alert)
    if error:
        lines += ["", "Error:", _indented(error)]
    if alert.description.strip():
        lines += ["", alert.description.strip()]
    links = _links(alert)
    if links:
        lines.append("")
        lines += [f"{label}: {url}" for label, url in links]
    return lines


def _text_entry(notification: Notification) -> list[str]:
    alert = notification.alert
    who = f" · {alert.responder}" if alert.responder else ""
    lines = [
        f"* {state_word(notification)} [{alert.severity}] {alert.rule} · {alert.source}{who}",
        f"  {_header_text(alert.summary)}",
    ]
    lines += [f"  {label}: {url}" for label, url in _links(alert)]
    return lines


def text_part(notifications: Sequence[Notification], *, title: str) -> str:
    if len(notifications) == 1:
        n = notifications[0]
        body = _text_alert(n)
        ids = f"alert {n.alert.id} · notification {n.id}"
    else:
        shown, more = _digest_members(notifications)
        body = [title, ""]
        for n in shown:
            body += [*_text_entry(n), ""]
        if more:
            body.append(more)
        ids = f"{len(notifications)} notifications"
    return "\n".join([*body, "", "-- ", f"{ids} · sent by zaia-relay {__version__}", ""])


# --- HTML -------------------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _html_links(alert: Alert) -> str:
    anchors = [
        f'<a href="{_e(url)}" style="color:#1570EF;font-weight:bold">{_e(label)}</a>'
        for label, url in _links(alert)
    ]
    return " &nbsp;·&nbsp; ".join(anchors)


def _html_pre(text: str) -> str:
    return (
        '<pre style="white-space:pre-wrap;word-break:break-word;background:#F2F4F7;'
        "border:1px solid #EAECF0;padding:8px 10px;margin:12px 0;font-size:13px;"
        f'font-family:Menlo,Consolas,monospace">{_e(text)}</pre>'
    )


def _html_alert(notification: Notification) -> str:
    alert = notification.alert
    rows = "".join(
        '<tr><th align="left" valign="top" style="padding:3px 16px 3px 0;color:#475467;'
        f'font-weight:normal;white-space:nowrap">{_e(label)}</th>'
        f'<td style="padding:3px 0">{_e(value)}</td></tr>'
        for label, value in facts(notification)
    )
    parts = [
        f'<h1 style="margin:0 0 12px;font-size:18px;line-height:1.3">{_e(alert.summary)}</h1>',
        f'<table role="presentation" style="border-collapse:collapse;font-size:14px">{rows}'
        "</table>",
    ]
    error = _error(alert)
    if error:
        parts.append(_html_pre(error))
    if alert.description.strip():
        parts.append(
            f'<p style="white-space:pre-wrap;font-size:14px;margin:12px 0">'
            f"{_e(alert.description.strip())}</p>"
        )
    links = _html_links(alert)
    if links:
        parts.append(f'<p style="margin:12px 0;font-size:14px">{links}</p>')
    parts.append(
        f'<p style="{_MUTED}">alert {_e(alert.id)} · notification {_e(notification.id)}</p>'
    )
    return "".join(parts)


def _html_entry(notification: Notification) -> str:
    alert = notification.alert
    colour = _colour([notification])
    who = f" · {alert.responder}" if alert.responder else ""
    head = f"{state_word(notification)} [{alert.severity}] {alert.rule} · {alert.source}{who}"
    links = _html_links(alert)
    return (
        f'<div style="border-left:4px solid {colour};padding:4px 0 4px 10px;margin:10px 0">'
        f'<div style="{_MUTED};font-weight:bold">{_e(head)}</div>'
        f'<div style="font-size:14px;margin:2px 0">{_e(alert.summary)}</div>'
        + (f'<div style="font-size:13px">{links}</div>' if links else "")
        + "</div>"
    )


def html_part(notifications: Sequence[Notification], *, title: str) -> str:
    colour = _colour(notifications)
    if len(notifications) == 1:
        n = notifications[0]
        word = f"{state_word(n)} · {n.alert.severity.upper()}"
        content = _html_alert(n)
    else:
        shown, more = _digest_members(notifications)
        word = f"{len(notifications)} ALERTS"
        content = f'<h1 style="margin:0 0 8px;font-size:18px">{_e(title)}</h1>'
        content += "".join(_html_entry(n) for n in shown)
        if more:
            content += f'<p style="{_MUTED}">{_e(more)}</p>'
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="margin:0;padding:16px;background:#F9FAFB;{_FONT};color:#101828">'
        '<table role="presentation" width="100%" style="max-width:720px;'
        'border-collapse:collapse;background:#FFFFFF;border:1px solid #EAECF0">'
        f'<tr><td style="background:{colour};height:6px;font-size:0;line-height:0">&nbsp;</td>'
        '</tr><tr><td style="padding:16px 20px">'
        f'<div style="color:{colour};font-weight:bold;font-size:12px;letter-spacing:0.05em;'
        f'margin-bottom:6px">{_e(word)}</div>{content}'
        f'<p style="{_MUTED};margin-top:16px">Sent by zaia-relay {_e(__version__)}</p>'
        "</td></tr></table></body></html>"
    )


# --- digests and the message ------------------------------------------------------------


def _digest_members(notifications: Sequence[Notification]) -> tuple[list[Notification], str]:
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


def _title(notifications: Sequence[Notification]) -> str:
    if len(notifications) == 1:
        return notifications[0].alert.summary
    if message_group(notifications) is not None:
        digest = group_digest(notifications)
        return f"{digest.title} (route {digest.group.route})"
    return _burst_title(notifications)


def email_message(
    notifications: Sequence[Notification],
    *,
    sender: str,
    to: Sequence[str],
    subject_prefix: str,
    now: datetime,
) -> EmailMessage:
    """The message carrying `notifications`: `sender` and `to` as configured (already
    checked addresses), `Date` from `now`."""
    if not notifications:
        raise ValueError("a message needs at least one notification")
    title = _title(notifications)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject(notifications, prefix=subject_prefix)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id(notifications)
    if len(notifications) == 1 and notifications[0].kind in ("resolved", "reminder"):
        alert = notifications[0].alert
        first = f"<{notification_id(alert.id, 'firing')}@{MESSAGE_ID_DOMAIN}>"
        message["In-Reply-To"] = first
        message["References"] = first
    # RFC 3834: no vacation auto-replies to an alert.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text_part(notifications, title=title))
    message.add_alternative(html_part(notifications, title=title), subtype="html")
    return message


__all__ = [
    "DIGEST_SHOWN",
    "MESSAGE_ID_DOMAIN",
    "email_message",
    "facts",
    "html_part",
    "message_id",
    "subject",
    "text_part",
]
