"""The console sink: one readable line per alert on standard output (the demo's sink).

Invariants:
- One line per notification, flushed at once, so lines from a digest never interleave
  with log output mid-line: newlines in summaries are folded into spaces. A route
  group's message of several is one heading line with the count, then its first
  alerts' lines (indented) and how many more.
- Colours only when `color: always`, or `auto` and the stream is a terminal.
- Writing cannot fail in a way worth retrying: a closed or broken stream is a dead
  letter, not a retry loop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC
from typing import Literal, TextIO

from relay.domain.alerts import Notification
from relay.domain.delivery import DeliveryPolicy
from relay.domain.grouping import group_digest, message_group
from relay.errors import SinkError
from relay.settings import ConsoleSinkSettings
from relay.sinks.base import BaseSink

# Printing is cheap and local: take whatever is due in one go.
CONSOLE_MAX_BATCH = 500
_ANSI = {"critical": "\x1b[1;31m", "warning": "\x1b[33m", "info": "\x1b[36m"}
_ANSI_RESOLVED = "\x1b[32m"
_ANSI_DIM = "\x1b[2m"
_ANSI_RESET = "\x1b[0m"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _extras(notification: Notification) -> str:
    """The rule's own labels and its annotations, `key=value` each."""
    alert = notification.alert
    labels = [f"{k}={v}" for k, v in alert.rule_labels.items()]
    notes = [f"{k}={v}" for k, v in alert.annotations.items()]
    return _one_line(" ".join([*labels, *notes]))


def console_line(notification: Notification, *, color: bool) -> str:
    """`HH:MM:SSZ CRITICAL firing   rule [source] summary  labels annotations  link` in
    one line."""
    alert = notification.alert
    resolved = notification.kind == "resolved" or alert.state == "resolved"
    state = {"reminder": "reminder", "test": "test"}.get(notification.kind, alert.state)
    when = notification.created_at.astimezone(UTC).strftime("%H:%M:%SZ")
    severity = f"{alert.severity.upper():<8}"
    parts = [f"{state:<8}", f"{alert.rule} [{alert.source}]", _one_line(alert.summary)]
    link = f"  {alert.link}" if alert.link else ""
    extras = _extras(notification)
    if extras:
        link = f"  {extras}{link}"
    if not color:
        return f"{when} {severity} {' '.join(parts)}{link}"
    tint = _ANSI_RESOLVED if resolved else _ANSI.get(alert.severity, "")
    return (
        f"{_ANSI_DIM}{when}{_ANSI_RESET} {tint}{severity} {parts[0]}{_ANSI_RESET} "
        f"{parts[1]} {parts[2]}{_ANSI_DIM}{link}{_ANSI_RESET}"
    )


def console_group_lines(notifications: Sequence[Notification], *, color: bool) -> list[str]:
    """A route group's message: one heading with the count, then the first alerts
    (indented), then how many more."""
    digest = group_digest(notifications)
    first = digest.shown[0]
    when = first.created_at.astimezone(UTC).strftime("%H:%M:%SZ")
    worst = digest.severity
    heading = f"{'group':<8} {_one_line(digest.title)} [route {digest.group.route}]"
    if color:
        tint = _ANSI.get(worst, "")
        head = f"{_ANSI_DIM}{when}{_ANSI_RESET} {tint}{worst.upper():<8} {heading}{_ANSI_RESET}"
    else:
        head = f"{when} {worst.upper():<8} {heading}"
    lines = [head, *(f"  {console_line(n, color=color)}" for n in digest.shown)]
    if digest.more is not None:
        lines.append(f"  … {digest.more}")
    return lines


def console_text(notifications: Sequence[Notification], *, color: bool) -> str:
    """What one message prints: a line per notification, or a group's heading and lines."""
    if len(notifications) > 1 and message_group(notifications) is not None:
        lines = console_group_lines(notifications, color=color)
    else:
        lines = [console_line(n, color=color) for n in notifications]
    return "".join(line + "\n" for line in lines)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ConsoleSink(BaseSink):
    def __init__(
        self,
        name: str,
        settings: ConsoleSinkSettings | None = None,
        *,
        stream: TextIO | None = None,
    ) -> None:
        super().__init__(name, policy=DeliveryPolicy(max_batch=CONSOLE_MAX_BATCH))
        self._stream = stream
        mode: Literal["auto", "always", "never"] = "auto" if settings is None else settings.color
        self._color = mode == "always" or (mode == "auto" and _isatty(self.stream))

    @property
    def stream(self) -> TextIO:
        # Looked up on each use, so a test (or the demo) that swaps sys.stdout is followed.
        return self._stream if self._stream is not None else sys.stdout

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        del message_id  # A console line has no id for a reader to deduplicate by.
        text = console_text(notifications, color=self._color)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return
        raise SinkError(self._name, f"cannot write to standard output ({reason})", retryable=False)


__all__ = [
    "CONSOLE_MAX_BATCH",
    "ConsoleSink",
    "console_group_lines",
    "console_line",
    "console_text",
]
