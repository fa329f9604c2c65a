"""Notifications as e-mail: one `multipart/alternative` message, plain text and HTML.

Pure: no I/O, no clock (`now` is the `Date`).

Invariants:
- `Message-ID` is `<ID@zaia-relay>` with ID the notification id, or for a digest the
  id of the message (`group_message_id` for a route group, `batch_id` for a burst), so
  every attempt of the same message has the same Message-ID and a retry that reached
  the mailbox twice is recognisable. A resolve or a reminder is `In-Reply-To` its
  alert's firing message, so mail clients thread them.
- Header text taken from alerts is folded to one line (`email_words.header_text`): a summary or
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
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from relay import __version__
from relay.domain.alerts import Alert, Notification, notification_id
from relay.sinks.email_words import (
    MESSAGE_ID_DOMAIN,
    colour,
    digest_members,
    error_excerpt,
    facts,
    header_text,
    links,
    message_id,
    message_title,
    short_error,
    subject,
)
from relay.sinks.words import state_word

_FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif"
_MUTED = "color:#667085;font-size:12px"
_MONO = "font-family:Menlo,Consolas,monospace;font-size:12px;color:#475467"


# --- plain text -------------------------------------------------------------------------


def _indented(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines())


def _text_alert(notification: Notification) -> list[str]:
    alert = notification.alert
    rows = facts(notification)
    width = max(len(label) for label, _ in rows) + 2
    lines = [alert.summary, ""]
    lines += [f"{label + ':':<{width}}{header_text(value)}" for label, value in rows]
    error = error_excerpt(alert)
    if error:
        lines += ["", "Error:", _indented(error)]
    if alert.description.strip():
        lines += ["", alert.description.strip()]
    found = links(alert)
    if found:
        lines.append("")
        lines += [f"{label}: {url}" for label, url in found]
    return lines


def _text_entry(notification: Notification) -> list[str]:
    alert = notification.alert
    who = f" · {alert.responder}" if alert.responder else ""
    lines = [
        f"* {state_word(notification)} [{alert.severity}] {alert.rule} · {alert.source}{who}",
        f"  {header_text(alert.summary)}",
    ]
    if error := short_error(alert):
        lines.append(f"  Error: {error}")
    lines += [f"  {label}: {url}" for label, url in links(alert)]
    return lines


def text_part(notifications: Sequence[Notification], *, title: str) -> str:
    if len(notifications) == 1:
        n = notifications[0]
        body = _text_alert(n)
        ids = f"alert {n.alert.id} · notification {n.id}"
    else:
        shown, more = digest_members(notifications)
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
        for label, url in links(alert)
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
    error = error_excerpt(alert)
    if error:
        parts.append(_html_pre(error))
    if alert.description.strip():
        parts.append(
            f'<p style="white-space:pre-wrap;font-size:14px;margin:12px 0">'
            f"{_e(alert.description.strip())}</p>"
        )
    anchors = _html_links(alert)
    if anchors:
        parts.append(f'<p style="margin:12px 0;font-size:14px">{anchors}</p>')
    parts.append(
        f'<p style="{_MUTED}">alert {_e(alert.id)} · notification {_e(notification.id)}</p>'
    )
    return "".join(parts)


def _html_entry(notification: Notification) -> str:
    alert = notification.alert
    bar = colour([notification])
    who = f" · {alert.responder}" if alert.responder else ""
    head = f"{state_word(notification)} [{alert.severity}] {alert.rule} · {alert.source}{who}"
    anchors = _html_links(alert)
    return (
        f'<div style="border-left:4px solid {bar};padding:4px 0 4px 10px;margin:10px 0">'
        f'<div style="{_MUTED};font-weight:bold">{_e(head)}</div>'
        f'<div style="font-size:14px;margin:2px 0">{_e(alert.summary)}</div>'
        + (f'<div style="{_MONO}">{_e(error)}</div>' if (error := short_error(alert)) else "")
        + (f'<div style="font-size:13px">{anchors}</div>' if anchors else "")
        + "</div>"
    )


def html_part(notifications: Sequence[Notification], *, title: str) -> str:
    bar = colour(notifications)
    if len(notifications) == 1:
        n = notifications[0]
        word = f"{state_word(n)} · {n.alert.severity.upper()}"
        content = _html_alert(n)
    else:
        shown, more = digest_members(notifications)
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
        f'<tr><td style="background:{bar};height:6px;font-size:0;line-height:0">&nbsp;</td>'
        '</tr><tr><td style="padding:16px 20px">'
        f'<div style="color:{bar};font-weight:bold;font-size:12px;letter-spacing:0.05em;'
        f'margin-bottom:6px">{_e(word)}</div>{content}'
        f'<p style="{_MUTED};margin-top:16px">Sent by zaia-relay {_e(__version__)}</p>'
        "</td></tr></table></body></html>"
    )


# --- the message ----------------------------------------------------------------------


def email_message(
    notifications: Sequence[Notification],
    *,
    sender: str,
    to: Sequence[str],
    subject_prefix: str,
    now: datetime,
    stamped_id: str | None = None,
) -> EmailMessage:
    """The message carrying `notifications`: `sender` and `to` as configured (already
    checked addresses), `Date` from `now`; `stamped_id` is the id the outbox gave the
    message at its first attempt (a route group's), kept by its retries."""
    if not notifications:
        raise ValueError("a message needs at least one notification")
    title = message_title(notifications)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject(notifications, prefix=subject_prefix)
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id(notifications, stamped_id=stamped_id)
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


__all__ = ["email_message", "html_part", "text_part"]
