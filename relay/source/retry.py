"""Pure retry maths for the Zaia API client: backoff with full jitter and `Retry-After`.

Invariants:
- Nothing here sleeps, reads a clock or does I/O: `now` and `rng` are passed in, so every
  decision is a plain function of its arguments and is tested as a table.
- A backoff delay is always within `[0, min(backoff_max_s, backoff_s * 2**attempt)]`
  ("full jitter", `relay.domain.backoff`), so many relays that failed together do not
  retry together.
- A `Retry-After` the server sent is obeyed exactly, never shortened; when it is longer
  than `backoff_max_s` the request is given up at once instead of holding a poll cycle
  hostage, and the caller is told how long to wait.
- `attempt` counts the retries already made: 0 after the first failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from relay.domain.backoff import backoff_ceiling_s, backoff_delay_s

# `Retry-After` itself is parsed by `relay.domain.delivery.parse_retry_after`, the one
# parser for the Zaia API's answers and the sinks'.


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one request is retried."""

    max_retries: int
    backoff_s: float
    backoff_max_s: float

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_s and backoff_max_s must be 0 or more")

    def backoff_cap_s(self, attempt: int) -> float:
        """The largest delay full jitter may pick before retry number `attempt + 1`."""
        if attempt < 0:
            raise ValueError("attempt must be 0 or more")
        return backoff_ceiling_s(attempt + 1, base_s=self.backoff_s, max_s=self.backoff_max_s)

    def backoff_delay_s(self, attempt: int, *, rng: random.Random) -> float:
        """A delay drawn uniformly from `[0, backoff_cap_s(attempt)]` (full jitter)."""
        if attempt < 0:
            raise ValueError("attempt must be 0 or more")
        return backoff_delay_s(
            attempt + 1, base_s=self.backoff_s, max_s=self.backoff_max_s, rng=rng
        )

    def next_delay_s(
        self, attempt: int, *, retry_after_s: float | None, rng: random.Random
    ) -> float | None:
        """How long to wait before retrying, or None to give up now.

        `retry_after_s` is the server's `Retry-After`, already parsed, if it sent one.
        """
        if attempt >= self.max_retries:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.backoff_max_s else None
        return self.backoff_delay_s(attempt, rng=rng)
