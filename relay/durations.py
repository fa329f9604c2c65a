"""The relay's one set of formatters: durations, numbers and credits, UTC timestamps.

Durations are parsed from and written in the configuration's spelling (`15s`, `5m`,
`2h`, `7d`, `1h30m`); the other duration spellings are named variants for other
readers (a table cell, a chat message), not copies.

Invariants:
- `format_duration` is exact and round-trips through `parse_duration`.
- Every timestamp written is converted to UTC first and ends in `Z`.
- No formatter raises on a value it can be given: `None`, negative or non-finite inputs
  have a spelling of their own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, overload

_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
# Largest first; `format_duration` spells a week as days, which reads better.
_UNITS_S: tuple[tuple[str, int], ...] = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# A table cell counts hours up to two days ("47h 59m") before switching to days.
_AGE_DAYS_FROM_S = 48 * 3600

Timespec = Literal["auto", "seconds", "milliseconds", "microseconds"]


# --- durations ----------------------------------------------------------------------------


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
    try:
        return timedelta(seconds=total_s)
    except OverflowError:  # more than timedelta holds (~2.7 million years), or inf
        raise ValueError(f"invalid duration {text!r}: too long") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, e.g. 5400s -> `1h30m`."""
    remaining_ms = round(value.total_seconds() * 1000)
    if remaining_ms == 0:
        return "0s"
    parts: list[str] = []
    for unit, size_s in _UNITS_S:
        count, remaining_ms = divmod(remaining_ms, size_s * 1000)
        if count:
            parts.append(f"{count}{unit}")
    if remaining_ms:
        parts.append(f"{remaining_ms}ms")
    return "".join(parts)


def format_whole_duration(value: timedelta) -> str:
    """`format_duration` rounded to the second (`12m30s`, not `12m30s250ms`), for people."""
    return format_duration(timedelta(seconds=round(value.total_seconds())))


def _two_units(total_s: int, units: Sequence[tuple[str, int]]) -> list[tuple[int, str]]:
    """The largest of `units` that `total_s` fills (seconds at least) and the next one."""
    for index, (unit, size_s) in enumerate(units):
        if total_s >= size_s or index == len(units) - 1:
            count, rest_s = divmod(total_s, size_s)
            parts = [(count, unit)]
            if index + 1 < len(units):
                next_unit, next_size_s = units[index + 1]
                parts.append((rest_s // next_size_s, next_unit))
            return parts
    return [(total_s, "s")]


def format_span_s(seconds: float | None) -> str:
    """`45s`, `12m 5s`, `3h 2m`, `1h`, `2d 4h`: two units at most, rounded, for a chat
    message; `—` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    parts = _two_units(round(max(0.0, seconds)), _UNITS_S)
    return " ".join(f"{count}{unit}" for count, unit in parts if count) or "0s"


def format_age_s(seconds: float | None) -> str:
    """`42s`, `3m 5s`, `2h 10m`, `47h 59m`, `3d 4h`: always two units once past a
    minute, so a table column reads evenly; `never` when there is none."""
    if seconds is None:
        return "never"
    total_s = max(0, int(seconds))
    units = _UNITS_S if total_s >= _AGE_DAYS_FROM_S else _UNITS_S[1:]
    return " ".join(f"{count}{unit}" for count, unit in _two_units(total_s, units))


def format_duration_s(seconds: float | None) -> str:
    """`350 ms`, `4.2 s`, then `format_age_s` past a minute: a duration measured to the
    millisecond (an execution's, a p95); "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return format_age_s(seconds)


def format_rough_s(seconds: float) -> str:
    """One rounded unit, `42s`, `15m`, `60m`, `1.5h`: for a reason a person reads."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


# --- numbers ------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """`1,234.5`: thousands separated, at most two decimals, no trailing zeros."""
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def format_credits(value: float) -> str:
    """Credits as `format_number` writes them, or `unknown` for a non-finite value."""
    return format_number(value) if math.isfinite(value) else "unknown"


# --- timestamps ---------------------------------------------------------------------------


@overload
def utc_iso(moment: datetime, *, timespec: Timespec = "auto", sep: str = "T") -> str: ...
@overload
def utc_iso(moment: None, *, timespec: Timespec = "auto", sep: str = "T") -> None: ...
@overload
def utc_iso(
    moment: datetime | None, *, timespec: Timespec = "auto", sep: str = "T"
) -> str | None: ...


def utc_iso(moment: datetime | None, *, timespec: Timespec = "auto", sep: str = "T") -> str | None:
    """`2026-03-01T12:00:00Z` (a fraction only when there is one, unless `timespec`
    says), converted to UTC first; None stays None. `sep=" "` is for people."""
    if moment is None:
        return None
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep, timespec)
    return f"{text}Z"


__all__ = [
    "Timespec",
    "format_age_s",
    "format_credits",
    "format_duration",
    "format_duration_s",
    "format_number",
    "format_rough_s",
    "format_span_s",
    "format_whole_duration",
    "parse_duration",
    "utc_iso",
]
