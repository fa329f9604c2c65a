"""Notifications as Microsoft Teams messages: an Adaptive Card 1.5 in the message
envelope a Workflows webhook takes.

Pure: no I/O, no clock.

Invariants:
- The body is `{"type": "message", "attachments": [{"contentType":
  "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": CARD}]}` and
  CARD validates against the Adaptive Card 1.5 JSON schema (the tests check it).
- The encoded body (`encode_message`, the exact bytes sent) is at most
  `TEAMS_MAX_BODY_BYTES`, under Teams' 28 KB message limit: a digest lists as many
  alerts as fit, then "and N more"; one alert's long texts are cut.
- Text taken from alerts is plain text: TextBlocks (and facts) render a markdown subset,
  so its markdown characters are backslash-escaped (`plain`) and execution text cannot
  add links, emphasis or lists; a line break is a blank line (what a TextBlock breaks
  at). Links are only `Action.OpenUrl` buttons (`relay.sinks.words.alert_links`).
- The card's top Container is styled by severity (`STYLE`): attention, warning, accent,
  and good when everything in it resolved.
- One notification renders as a detailed card; several as a digest. A route group's
  digest is titled by `relay.domain.grouping.group_digest`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from relay.domain.alerts import Alert, Notification
from relay.domain.grouping import group_digest, message_group
from relay.domain.redact import ELLIPSIS, bound
from relay.domain.render_text import group_text
from relay.durations import format_credits, format_span_s, utc_iso
from relay.sinks.words import alert_links, burst_title, state_word, step_words, worst_firing
from relay.vocab import RUNBOOK_ANNOTATION

CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams refuses messages above about 28 KB; the margin covers what the workflow adds.
TEAMS_MAX_BODY_BYTES = 27 * 1024
STYLE = {"critical": "attention", "warning": "warning", "info": "accent"}
RESOLVED_STYLE = "good"
_TITLE_CHARS = 300
_TEXT_CHARS = 3000
_LINE_CHARS = 600
# The characters that make markdown anywhere in a line (emphasis, code, links, HTML-ish
# tags); a backslash makes each literal. `(` alone makes no link once `[` is escaped.
_MARKDOWN = re.compile(r"([\\`*_\[\]~<>])")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)+")
# Line starts that make a list ("- x", "1. x") or a heading ("# x").
_LINE_START = re.compile(r"(?m)^(\s*)([-+]|\d+[.)]|#+)(?=\s)")


def plain(text: str) -> str:
    """`text` shown as it is: markdown characters escaped, so nothing becomes a link,
    emphasis or a list."""
    escaped = _MARKDOWN.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + _escape_marker(m.group(2)), escaped)


def _escape_marker(marker: str) -> str:
    if marker[-1] in ".)":  # "1." -> "1\."
        return f"{marker[:-1]}\\{marker[-1]}"
    return f"\\{marker}"


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (`bound`), never just after a
    lone backslash (which would escape the ellipsis and leave a stray one)."""
    cut = bound(text, limit)
    if cut == text:
        return cut
    body = cut[: -len(ELLIPSIS)]
    if (len(body) - len(body.rstrip("\\"))) % 2:
        body = body[:-1]
    return body + ELLIPSIS


def _text(text: str, *, limit: int = _TEXT_CHARS, **style: Any) -> dict[str, Any]:
    # A TextBlock breaks a line only at a blank line: each line break becomes one.
    broken = _LINE_BREAKS.sub("\n\n", plain(text))
    return {"type": "TextBlock", "text": clip(broken, limit), "wrap": True, **style}


def _buttons(alert: Alert) -> list[dict[str, Any]]:
    return [
        {"type": "Action.OpenUrl", "title": title, "url": url} for title, url in alert_links(alert)
    ]


def style_of(notifications: Sequence[Notification]) -> str:
    """The Container style: the worst firing severity, `good` when all resolved."""
    worst = worst_firing(notifications)
    return RESOLVED_STYLE if worst is None else STYLE[worst]


def _heading(title: str, subtitle: str, style: str) -> dict[str, Any]:
    return {
        "type": "Container",
        "style": style,
        "bleed": True,
        "items": [
            _text(title, limit=_TITLE_CHARS, weight="bolder", size="medium"),
            _text(subtitle, limit=_LINE_CHARS, isSubtle=True, spacing="none"),
        ],
    }


# --- one alert ----------------------------------------------------------------------------


def _facts(notification: Notification) -> list[dict[str, str]]:
    alert = notification.alert
    pairs = [("Status", f"{state_word(notification)} · {alert.severity}"), ("Rule", alert.rule)]
    pairs.append(("Source", alert.source))
    facts = alert.execution
    if facts is not None:
        pairs += [
            ("Execution", f"{facts.kind} {facts.id} ({facts.status})"),
            ("Responder", alert.responder or facts.responder_id),
            ("Credits", format_credits(facts.credits_used)),
            ("Duration", format_span_s(facts.duration_s)),
        ]
    elif alert.responder:
        pairs.append(("Responder", alert.responder))
    cause = alert.cause
    if (step := step_words(cause)) is not None:
        pairs.append(("Step", step))
    if alert.group:
        group = dict(sorted(alert.group.items()))
        name, responder_id = alert.labels.get("responder"), group.get("responder_id")
        pairs.append(
            ("Group", group_text(group, {responder_id: name} if name and responder_id else {}))
        )
    if alert.value is not None and math.isfinite(alert.value):
        pairs.append(("Value", f"{alert.value:g}"))
    pairs.append(("Started", utc_iso(alert.started_at)))
    if alert.ended_at is not None:
        pairs.append(("Resolved", utc_iso(alert.ended_at)))
    return [{"title": title, "value": clip(plain(value), _LINE_CHARS)} for title, value in pairs]


def _extras(alert: Alert) -> str | None:
    labels = [f"{k}={v}" for k, v in alert.rule_labels.items()]
    notes = [f"{k}: {v}" for k, v in alert.annotations.items() if k != RUNBOOK_ANNOTATION]
    return " · ".join([*labels, *notes]) or None


def _alert_card_body(notification: Notification, *, full: bool) -> list[dict[str, Any]]:
    alert = notification.alert
    subtitle = f"{state_word(notification)} · {alert.severity} · {alert.rule} · alert {alert.id}"
    body = [
        _heading(alert.summary, subtitle, style_of([notification])),
        {"type": "FactSet", "facts": _facts(notification)},
    ]
    if full and alert.description.strip():
        body.append(_text(alert.description))
    cause = alert.cause
    if cause is not None and len(cause.chain) > 1:
        body.append(_text(f"Via: {' → '.join(cause.chain)}", limit=_LINE_CHARS, isSubtle=True))
    if cause is not None and cause.error_excerpt:
        body.append(_text("Error", weight="bolder", spacing="medium"))
        body.append(_text(cause.error_excerpt, fontType="monospace", spacing="small"))
    extras = _extras(alert)
    if full and extras is not None:
        body.append(_text(extras, limit=_TEXT_CHARS, isSubtle=True, size="small"))
    return body


# --- digests ------------------------------------------------------------------------------


def _digest_item(notification: Notification) -> dict[str, Any]:
    alert = notification.alert
    head = f"{state_word(notification)} · {alert.severity} · {alert.rule} · {alert.source}"
    items: list[dict[str, Any]] = [
        _text(head, limit=_LINE_CHARS, weight="bolder"),
        _text(alert.summary, limit=_LINE_CHARS, spacing="none"),
    ]
    buttons = _buttons(alert)
    if buttons:
        items.append({"type": "ActionSet", "actions": buttons})
    return {"type": "Container", "separator": True, "items": items}


def _more(hidden: int) -> dict[str, Any]:
    return _text(
        f"…and {hidden} more. The relay's status page and /api/v1/alerts list them all.",
        isSubtle=True,
        separator=True,
    )


def _digest_title(notifications: Sequence[Notification]) -> tuple[str, str]:
    if message_group(notifications) is not None:
        digest = group_digest(notifications)
        return digest.title, f"route {digest.group.route}"
    return burst_title(notifications), "zaia-relay digest"


# --- messages -----------------------------------------------------------------------------


def encode_message(message: dict[str, Any]) -> bytes:
    """The exact bytes sent: compact UTF-8 JSON."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _message(
    body: list[dict[str, Any]], actions: list[dict[str, Any]], fallback: str
) -> dict[str, Any]:
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "fallbackText": clip(" ".join(fallback.split()), _LINE_CHARS),
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _single(notification: Notification) -> dict[str, Any]:
    alert = notification.alert
    fallback = f"{state_word(notification)} [{alert.severity}] {alert.summary}"
    buttons = _buttons(alert)
    message = _message(_alert_card_body(notification, full=True), buttons, fallback)
    if len(encode_message(message)) <= TEAMS_MAX_BODY_BYTES:
        return message
    # The description and the extra labels are the texts without a small bound...
    message = _message(_alert_card_body(notification, full=False), buttons, fallback)
    if len(encode_message(message)) <= TEAMS_MAX_BODY_BYTES:
        return message
    # ...and wide characters can still fill the rest: the heading and the buttons say it.
    subtitle = f"{state_word(notification)} · {alert.severity} · {alert.rule} · alert {alert.id}"
    note = _text("The details are too large for Teams; open the execution or the relay's API.")
    return _message(
        [_heading(alert.summary, subtitle, style_of([notification])), note], buttons, fallback
    )


def _digest(notifications: Sequence[Notification]) -> dict[str, Any]:
    title, subtitle = _digest_title(notifications)
    heading = _heading(title, subtitle, style_of(notifications))
    items = [_digest_item(n) for n in notifications]
    # Room for the heading and the longest "and N more" there could be; then each
    # alert's container costs its encoded length and a comma.
    budget = TEAMS_MAX_BODY_BYTES - len(
        encode_message(_message([heading, _more(len(items))], [], title))
    )
    shown: list[dict[str, Any]] = []
    for item in items:
        cost = len(encode_message(item)) + 1
        if cost > budget:
            break
        budget -= cost
        shown.append(item)
    hidden = len(items) - len(shown)
    return _message([heading, *shown, *([_more(hidden)] if hidden else [])], [], title)


def teams_message(notifications: Sequence[Notification]) -> dict[str, Any]:
    """The Workflows webhook body of a message (module invariants)."""
    if not notifications:
        raise ValueError("a message needs at least one notification")
    if len(notifications) == 1 and message_group(notifications) is None:
        message = _single(notifications[0])
    else:
        message = _digest(notifications)
    size = len(encode_message(message))
    if size > TEAMS_MAX_BODY_BYTES:  # unreachable by construction; kept as the last guard
        raise ValueError(f"a Teams message of {size} bytes exceeds {TEAMS_MAX_BODY_BYTES}")
    return message


__all__ = [
    "CARD_CONTENT_TYPE",
    "CARD_VERSION",
    "STYLE",
    "TEAMS_MAX_BODY_BYTES",
    "clip",
    "encode_message",
    "plain",
    "style_of",
    "teams_message",
]
