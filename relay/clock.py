"""The wall clock of the relay, and the one rule for time zones.

Invariants:
- `utcnow()` is the only place the relay reads the wall clock; everything else takes a
  `now` callable defaulting to it, so tests inject a clock. (The simulator, a separate
  test tool, has its own in `relay.sim.clock`; the store encodes times its own way.)
- Every `datetime` the relay keeps is timezone-aware UTC: `as_utc` converts, and the two
  pydantic types below apply it when a value is parsed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive `moment` is taken to be UTC already."""
    # Runs for every timestamp of every API event: the common case (a zero offset) only
    # swaps the tzinfo, which is cheaper than `astimezone`.
    offset = moment.utcoffset()
    if offset is None or not offset:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# A time typed by an operator (configuration, admin API): it must say its time zone.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]
# A time sent by the Zaia API: with an offset as documented, or naive, meaning UTC.
ApiUtcDatetime = Annotated[datetime, AfterValidator(as_utc)]

__all__ = ["ApiUtcDatetime", "UtcDatetime", "as_utc", "utcnow"]
