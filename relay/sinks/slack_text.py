"""Text in Slack mrkdwn: escaping and cutting. Pure.

Invariant: `clip` never leaves half an entity (`&am`) that `escape` wrote, so cut text
still renders as the text it was.
"""

from __future__ import annotations

import re

__all__ = ["ELLIPSIS", "clip", "escape"]

ELLIPSIS = "…"
_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    """Escape text for Slack mrkdwn: `&`, `<` and `>` are control characters there."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters with an ellipsis, never inside an entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    cut = _PARTIAL_ENTITY.sub("", cut)
    return cut + ELLIPSIS
