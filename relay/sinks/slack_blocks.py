"""Notifications as Slack messages: Block Kit built with slack_sdk's models.

Pure: no I/O, no clock.

Invariants:
- Every message is within Slack's limits whatever the alert holds: at most 50 blocks,
  section text at most 3000 characters, section fields at most 10 of at most 2000
  characters, header text at most 150, button text at most 75, the fallback `text` at
  most 3000. Every block is built through slack_sdk's models and serialised with
  `to_dict()`, which runs their validators, so a limit we got wrong fails loudly here
  rather than at Slack.
- Text taken from alerts is escaped for mrkdwn (`&`, `<`, `>`), and cut after escaping
  without leaving half an entity; a code block's content cannot close its fence.
- Mentions come only from the sink's configured `mentions` (see
  `relay.sinks.slack_mentions`), put before the escaped text, never inside it.
- A rule's `runbook_url` annotation is a "Runbook" button (a link in digests) when it
  is an http(s) URL Slack can take; its other labels and annotations are one escaped
  context line.
- One notification renders as a detailed message; several render as a digest listing
  at most `DIGEST_SHOWN` of them, then "and N more"; a route group's message is one
  digest headed with its count and what it is about, naming its first `GROUP_SHOWN`
  with their links. A single firing alert of a sink that takes actions carries the
  Acknowledge / Silence buttons (`relay.domain.actions`); digests never do. The
  colour bar is the severity of the worst firing alert, green when everything in the
  message resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.attachments import BlockAttachment
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from relay.domain.actions import ACTION_LABELS, ACTIONS, action_id
from relay.domain.alerts import Alert, Notification
from relay.domain.grouping import GROUP_SHOWN, group_digest, message_group
from relay.domain.render_text import group_text
from relay.durations import format_credits, format_span_s, utc_iso
from relay.sinks.slack_mentions import NO_MENTIONS, Mentions, mention_text
from relay.sinks.slack_text import clip, escape
from relay.sinks.words import (
    RESOLVED_HEX,
    SEVERITY_HEX,
    burst_title,
    is_resolved,
    state_word,
    step_kinds,
    worst_firing,
)
from relay.vocab import RUNBOOK_ANNOTATION

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_FIELD_CHARS = 2000
MAX_FIELDS = 10
MAX_HEADER_CHARS = 150
MAX_BUTTON_CHARS = 75
MAX_URL_CHARS = 3000
MAX_FALLBACK_CHARS = 3000
DIGEST_SHOWN = 20
# The block of the action buttons, which the edit after a click replaces.
ACTIONS_BLOCK_ID = "relay_actions"
# The attachment's colour bar, by severity; resolved is always green.

_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_RESOLVED_EMOJI = "✅"
_TEST_EMOJI = "🧪"


# --- text helpers -------------------------------------------------------------------------


def _link(url: str | None, label: str) -> str:
    """A mrkdwn link, or just the label when the URL cannot be written safely."""
    if not url or len(url) > MAX_URL_CHARS or any(c in url for c in "<>| \n"):
        return escape(label)
    return f"<{url}|{escape(label)}>"


def _code_block(excerpt: str, budget: int) -> str:
    # Three backticks inside the excerpt would end the block early and unformat the rest.
    # A zero-width space between the backticks keeps them visible but inert.
    body = escape(excerpt.replace("```", "`\u200b`\u200b`"))
    fence = "```"
    return f"{fence}{clip(body, max(1, budget - 2 * len(fence)))}{fence}"


def _emoji(notification: Notification) -> str:
    if notification.kind == "test":
        return _TEST_EMOJI
    if is_resolved(notification):
        return _RESOLVED_EMOJI
    return _EMOJI.get(notification.alert.severity, _EMOJI["info"])


# --- one alert ----------------------------------------------------------------------------


def _field(label: str, value: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(f"*{label}*\n{escape(value)}", MAX_FIELD_CHARS))


def _fields(notification: Notification) -> list[MarkdownTextObject]:
    alert = notification.alert
    fields = [
        _field("Status", f"{state_word(notification)} · {alert.severity}"),
        _field("Rule", alert.rule),
        _field("Source", alert.source),
    ]
    facts = alert.execution
    if facts is not None:
        fields.append(_field("Execution", f"{facts.kind} {facts.id} ({facts.status})"))
        fields.append(_field("Responder", alert.responder or facts.responder_id))
        if facts.agent_id:
            fields.append(_field("Agent", facts.agent_id))
        if facts.workflow_id:
            fields.append(_field("Workflow", facts.workflow_id))
        fields.append(_field("Credits", format_credits(facts.credits_used)))
        fields.append(_field("Duration", format_span_s(facts.duration_s)))
    if alert.group:
        fields.append(_field("Group", _group_text(alert)))
    if alert.value is not None:
        fields.append(_field("Value", f"{alert.value:g}"))
    return fields[:MAX_FIELDS]


def _group_text(alert: Alert) -> str:
    """The group's values; a responder with a configured name is named."""
    group = dict(sorted((alert.group or {}).items()))
    name, responder_id = alert.labels.get("responder"), group.get("responder_id")
    names = {responder_id: name} if name and responder_id else {}
    return group_text(group, names)


def runbook_url(alert: Alert) -> str | None:
    """The rule's `runbook_url`, when it is a URL Slack can link to."""
    url = alert.annotations.get(RUNBOOK_ANNOTATION, "")
    if not url.startswith(("http://", "https://")) or len(url) > MAX_URL_CHARS:
        return None
    return None if any(c in url for c in "<>| \n") else url


def _extras_text(alert: Alert) -> str | None:
    """The rule's own labels and its annotations (but the runbook), in one line."""
    labels = [f"{k}={v}" for k, v in alert.rule_labels.items()]
    notes = [f"{k}: {v}" for k, v in alert.annotations.items() if k != RUNBOOK_ANNOTATION]
    if not labels and not notes:
        return None
    return clip(escape(" · ".join([*labels, *notes])), MAX_SECTION_CHARS)


def _cause_text(alert: Alert) -> str | None:
    cause = alert.cause
    if cause is None:
        return None
    kinds = step_kinds(cause)
    step = escape(cause.step_label or "unnamed step")
    head = f"*Failing step:* {step}"
    if kinds:
        head += f" ({escape(kinds)})"
    if len(cause.chain) > 1:
        head += f"\n*Via:* {escape(' → '.join(cause.chain))}"
    head = clip(head, MAX_SECTION_CHARS // 3)
    if not cause.error_excerpt:
        return head
    budget = MAX_SECTION_CHARS - len(head) - 1
    return f"{head}\n{_code_block(cause.error_excerpt, budget)}"


def _action_blocks(alert: Alert, *, done: str | None) -> list[Block]:
    """The Acknowledge / Silence buttons, or the line that replaced them after a click."""
    if done is not None:
        return [
            ContextBlock(elements=[MarkdownTextObject(text=clip(escape(done), MAX_SECTION_CHARS))])
        ]
    buttons = [
        ButtonElement(
            text=PlainTextObject(text=ACTION_LABELS[action]),
            action_id=action_id(action),
            value=alert.id,
            style="primary" if action == "ack" else None,
        )
        for action in ACTIONS
    ]
    return [ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=buttons)]


def _alert_blocks(
    notification: Notification, *, actions: bool = False, done: str | None = None
) -> list[Block]:
    alert = notification.alert
    header = clip(f"{_emoji(notification)} {alert.summary}".replace("\n", " "), MAX_HEADER_CHARS)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=header, emoji=True)),
        SectionBlock(fields=_fields(notification)),
    ]
    if alert.description.strip():
        text = clip(escape(alert.description), MAX_SECTION_CHARS)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    cause = _cause_text(alert)
    if cause is not None:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=cause)))
    buttons: list[ButtonElement] = []
    if alert.link and len(alert.link) <= MAX_URL_CHARS:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Open execution" if alert.execution else "Open"),
                url=alert.link,
                action_id="open",
            )
        )
    runbook = runbook_url(alert)
    if runbook is not None:
        buttons.append(
            ButtonElement(text=PlainTextObject(text="Runbook"), url=runbook, action_id="runbook")
        )
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    firing = notification.kind == "firing" and alert.state == "firing"
    if (actions and firing) or done is not None:
        blocks += _action_blocks(alert, done=done)
    extras = _extras_text(alert)
    if extras is not None:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=extras)]))
    context = f"alert `{alert.id}` · started {utc_iso(alert.started_at)}"
    if alert.ended_at is not None:
        context += f" · resolved {utc_iso(alert.ended_at)}"
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=escape(context))]))
    return blocks


# --- digests ------------------------------------------------------------------------------


def _digest_line(notification: Notification) -> str:
    alert = notification.alert
    title = f"{_emoji(notification)} *{escape(alert.rule)}* · {state_word(notification)}"
    line = f"{title} · {escape(alert.source)}\n{escape(alert.summary)}"
    if alert.link:
        line += f" {_link(alert.link, 'open')}"
    runbook = runbook_url(alert)
    if runbook is not None:
        line += f" · {_link(runbook, 'runbook')}"
    return clip(line, MAX_SECTION_CHARS)


def _digest_header(notifications: Sequence[Notification]) -> str:
    worst = worst_firing(notifications)
    emoji = _RESOLVED_EMOJI if worst is None else _EMOJI[worst]
    return clip(f"{emoji} {burst_title(notifications)}", MAX_HEADER_CHARS)


def _worst(notifications: Sequence[Notification]) -> str:
    return worst_firing(notifications) or "info"


def _group_header(notifications: Sequence[Notification]) -> str:
    """A route group's digest header: "🔴 5 alerts: execution-failed for Sales Qualifier"."""
    digest = group_digest(notifications)
    emoji = _RESOLVED_EMOJI if all(map(is_resolved, notifications)) else _EMOJI[digest.severity]
    return clip(f"{emoji} {' '.join(digest.title.split())}", MAX_HEADER_CHARS)


def _digest_blocks(notifications: Sequence[Notification]) -> list[Block]:
    grouped = message_group(notifications) is not None
    # A route group names its first few (like every sink); a burst digest shows more.
    shown = notifications[: GROUP_SHOWN if grouped else DIGEST_SHOWN]
    header = _group_header(notifications) if grouped else _digest_header(notifications)
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=header))]
    blocks.extend(SectionBlock(text=MarkdownTextObject(text=_digest_line(n))) for n in shown)
    hidden = len(notifications) - len(shown)
    if hidden:
        blocks.append(DividerBlock())
        more = f"…and {hidden} more. The relay's status page and /api/v1/alerts list them all."
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=more)]))
    return blocks


# --- messages -----------------------------------------------------------------------------


def colour_hex(notification: Notification) -> str:
    if is_resolved(notification):
        return RESOLVED_HEX
    return SEVERITY_HEX.get(notification.alert.severity, SEVERITY_HEX["info"])


def _colour(notifications: Sequence[Notification]) -> str:
    if len(notifications) == 1:
        return colour_hex(notifications[0])
    if all(is_resolved(n) for n in notifications):
        return RESOLVED_HEX
    return SEVERITY_HEX[_worst(notifications)]


def _with_mentions(mentions: str, escaped: str, limit: int) -> str:
    """`mentions` (configured, unescaped) before the already escaped text, within `limit`."""
    if not mentions:
        return clip(escaped, limit)
    return f"{mentions} {clip(escaped, limit - len(mentions) - 1)}"


def fallback_text(notifications: Sequence[Notification], *, mentions: str = "") -> str:
    """The plain `text` Slack shows in notifications and where blocks cannot render;
    `mentions` (from `mention_text`) go first, outside the escaping."""
    if len(notifications) == 1:
        n = notifications[0]
        text = f"{state_word(n)} [{n.alert.severity}] {n.alert.summary}"
    elif message_group(notifications) is not None:
        text = _group_header(notifications)
    else:
        text = _digest_header(notifications)
    return _with_mentions(mentions, escape(" ".join(text.split())), MAX_FALLBACK_CHARS)


def slack_message(
    notifications: Sequence[Notification],
    *,
    mentions: Mentions = NO_MENTIONS,
    actions: bool = False,
    done: str | None = None,
) -> dict[str, Any]:
    """The JSON of a message (for an incoming webhook or `chat.postMessage`/`chat.update`):
    fallback text (with the configured mentions of a firing message), and one attachment
    holding the blocks and the severity colour. `actions`: a single firing alert gets
    the action buttons; `done`: that line instead (the edit after a click)."""
    if not notifications:
        raise ValueError("a message needs at least one notification")
    if len(notifications) == 1:
        blocks = _alert_blocks(notifications[0], actions=actions, done=done)
    else:
        blocks = _digest_blocks(notifications)
    if len(blocks) > MAX_BLOCKS:  # unreachable by construction; kept as the last guard
        raise ValueError(f"{len(blocks)} blocks exceed Slack's limit of {MAX_BLOCKS}")
    attachment = BlockAttachment(blocks=blocks, color=_colour(notifications))
    text = fallback_text(notifications, mentions=mention_text(notifications, mentions))
    return {"text": text, "attachments": [attachment.to_dict()]}


def slack_thread_reply(
    notification: Notification, *, mentions: Mentions = NO_MENTIONS
) -> dict[str, Any]:
    """A short reply in the thread of an alert's first message (resolved, reminder); a
    reminder carries the configured mentions."""
    alert = notification.alert
    word = state_word(notification).capitalize()
    when = utc_iso(alert.ended_at or notification.created_at)
    text = f"{_emoji(notification)} {word} at {when}: {escape(' '.join(alert.summary.split()))}"
    if alert.value is not None:
        text += f" (value {alert.value:g})"
    mentioned = mention_text([notification], mentions)
    block_text = _with_mentions(mentioned, text, MAX_SECTION_CHARS)
    block = SectionBlock(text=MarkdownTextObject(text=block_text))
    return {
        "text": _with_mentions(mentioned, text, MAX_FALLBACK_CHARS),
        "blocks": [block.to_dict()],
    }


__all__ = [
    "ACTIONS_BLOCK_ID",
    "DIGEST_SHOWN",
    "MAX_BLOCKS",
    "MAX_HEADER_CHARS",
    "MAX_SECTION_CHARS",
    "RESOLVED_HEX",
    "SEVERITY_HEX",
    "clip",
    "colour_hex",
    "escape",
    "fallback_text",
    "runbook_url",
    "slack_message",
    "slack_thread_reply",
]
