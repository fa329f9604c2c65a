"""The console sink: one readable line per alert on standard output (the demo's sink).

Invariants:
- One line per notification, flushed at once, so lines from a digest never interleave
  with log output mid-line.
- Colours only when `color: always`, or `auto` and the stream is a terminal.
- Writing cannot fail in a way worth retrying: a closed or broken stream is a dead
  letter, not a retry loop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Literal, TextIO

from relay.domain.alerts import Notification
from relay.domain.delivery import DeliveryPolicy
from relay.domain.render import console_line
from relay.errors import SinkError
from relay.settings import ConsoleSinkSettings

# Printing is cheap and local: take whatever is due in one go.
CONSOLE_MAX_BATCH = 500


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class ConsoleSink:
    def __init__(
        self,
        name: str,
        settings: ConsoleSinkSettings | None = None,
        *,
        stream: TextIO | None = None,
    ) -> None:
        self._name = name
        self._stream = stream
        mode: Literal["auto", "always", "never"] = "auto" if settings is None else settings.color
        self._color = mode == "always" or (mode == "auto" and _isatty(self.stream))
        self._policy = DeliveryPolicy(max_batch=CONSOLE_MAX_BATCH)

    def __repr__(self) -> str:
        return f"ConsoleSink({self._name!r})"

    @property
    def stream(self) -> TextIO:
        # Looked up on each use, so a test (or the demo) that swaps sys.stdout is followed.
        return self._stream if self._stream is not None else sys.stdout

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> DeliveryPolicy:
        return self._policy

    @property
    def max_batch(self) -> int:
        return self._policy.max_batch

    async def send(self, notifications: Sequence[Notification]) -> None:
        text = "".join(console_line(n, color=self._color) + "\n" for n in notifications)
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            return
        raise SinkError(self._name, f"cannot write to standard output ({reason})", retryable=False)

    async def aclose(self) -> None:
        return None


__all__ = ["CONSOLE_MAX_BATCH", "ConsoleSink"]
