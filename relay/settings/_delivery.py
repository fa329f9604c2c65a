"""What every sink that talks to a remote service shares: how hard to try.

Its own module so each sink type's settings (`_sink_<type>.py`) can build on it while
`_sinks` gathers them all into `SinkSettings`.

Invariants:
- Retry settings are ordered: `retry_initial <= retry_max <= max_age`.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import model_validator

from relay.settings._base import (
    PositiveDuration,
    RateLimitSetting,
    Section,
    raise_problems,
)

Problems = list[tuple[tuple[str | int, ...], str]]


class DeliverySettings(Section):
    """How hard to try: shared by every sink that talks to a remote service."""

    timeout: PositiveDuration = timedelta(seconds=10)
    rate_limit: RateLimitSetting | None = None
    max_age: PositiveDuration = timedelta(hours=24)
    retry_initial: PositiveDuration = timedelta(seconds=1)
    retry_max: PositiveDuration = timedelta(minutes=5)
    # A receiver's `Retry-After` longer than this is taken as this: none pauses a sink
    # for longer (max_age still wins over both).
    max_retry_after: PositiveDuration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _ordered_retries(self) -> DeliverySettings:
        problems: Problems = []
        if self.retry_initial > self.retry_max:
            problems.append((("retry_initial",), "should not exceed retry_max"))
        if self.retry_max > self.max_age:
            problems.append((("retry_max",), "should not exceed max_age"))
        raise_problems(problems, title=type(self).__name__)
        return self


__all__ = ["DeliverySettings", "Problems"]
