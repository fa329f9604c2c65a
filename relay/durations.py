"""Human durations (`15s`, `5m`, `2h`, `7d`, `1h30m`) to `timedelta` and back."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> timedelta:
    """Parse `15s`, `5m`, `2h`, `7d`, `1h30m` or `250ms`; raise ValueError with a hint otherwise."""
    compact = text.strip().replace(" ", "")
    pos = 0
    total_s = 0.0
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        total_s += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if not compact or pos != len(compact):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, like 15s, 5m, 2h or 7d"
        )
    return timedelta(seconds=total_s)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, e.g. 5400s -> `1h30m`."""
    remaining_ms = round(value.total_seconds() * 1000)
    if remaining_ms == 0:
        return "0s"
    parts: list[str] = []
    for unit, size_s in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining_ms = divmod(remaining_ms, size_s * 1000)
        if count:
            parts.append(f"{count}{unit}")
    if remaining_ms:
        parts.append(f"{remaining_ms}ms")
    return "".join(parts)
