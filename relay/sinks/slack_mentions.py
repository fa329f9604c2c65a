"""Which configured Slack mentions a message carries.

Pure: no I/O.

Invariants:
- Mentions come only from the sink's configured `mentions` (settings accept Slack
  mention tokens and nothing else), never from an alert's text.
- Firing and reminder notifications mention; resolved and test ones never do (a
  resolution needs no one to act). A message about several alerts (a digest) carries
  the mentions of its worst firing severity.
- The mentions of one message are at most `MAX_MENTION_CHARS` long: whole tokens only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from relay.domain.alerts import Notification
from relay.vocab import SEVERITIES

MAX_MENTION_CHARS = 500

Mentions = Mapping[str, Sequence[str]]
NO_MENTIONS: Mentions = MappingProxyType({})


def mention_text(notifications: Sequence[Notification], mentions: Mentions) -> str:
    """The mentions for the worst severity firing in the message, space-separated; ""
    when nothing in it fires or that severity has none."""
    firing = [
        n.alert.severity
        for n in notifications
        if n.kind in ("firing", "reminder") and n.alert.state == "firing"
    ]
    if not firing:
        return ""
    worst = min(firing, key=SEVERITIES.index)  # SEVERITIES runs from the worst
    text = ""
    for mention in mentions.get(worst, ()):
        if len(text) + len(mention) + 1 > MAX_MENTION_CHARS:
            break
        text = f"{text} {mention}" if text else mention
    return text


__all__ = ["MAX_MENTION_CHARS", "NO_MENTIONS", "Mentions", "mention_text"]
