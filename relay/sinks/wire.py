"""How values are spelled in the sinks' payloads: times, credits, durations.

Each sink's payload lives beside its sink (`webhook`, `alertmanager`, `console`,
`slack_blocks`); what more than one of them writes the same way is here, so every
receiver sees a time or an amount spelled alike.

Pure: no I/O, no clock.

Invariants:
- A time is UTC ISO 8601 with a `Z`, whatever the zone of the `datetime` given.
- A non-finite amount or duration is spelled as unknown ("unknown", "—"), never `nan`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a `Z`, seconds precision unless there is a fraction."""
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat()
    return f"{text}Z"


def opt_iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def format_credits(value: float) -> str:
    if not math.isfinite(value):
        return "unknown"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_seconds(value: float | None) -> str:
    """`45s`, `12m 5s`, `3h 2m`, `2d 4h`: two units at most, for people."""
    if value is None or not math.isfinite(value):
        return "—"
    total = round(max(0.0, value))
    if total < 60:
        return f"{total}s"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        count, total = divmod(total, size)
        if count or parts:
            parts.append(f"{count}{name}")
        if len(parts) == 2:
            break
    return " ".join(part for part in parts if not part.startswith("0"))


__all__ = ["format_credits", "format_seconds", "iso", "opt_iso"]
