"""The gate every request of one source passes, so its `request_budget` holds at the API.

The client calls `acquire()` before each attempt (list pages, reads by id, nestings
and retries alike) and reports each answer; the maths is `domain.budget`'s.

Invariants:
- Requests of one source pass one at a time, each at a slot the budget allowed, so no
  rolling window holds more than the budget, whoever asks (the cadence, the alert
  planner following child executions, a retry).
- A 429 slows the source; a 429 to a list read also blocks it until the `Retry-After`
  (already bounded by the client, `max_retry_after`) has passed. A 429 to a read by id
  or nestings only slows it: those reads have fallbacks and must not stall the list.
  Successes bring the rate back.
- A request is never held longer than `max_wait_s`: past that `acquire` raises
  `SourceRateLimited` with the wait, so the cycle ends as rate limited (and the poll
  loop waits) instead of timing out while it holds a slot open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from relay.domain.budget import RequestBudget
from relay.errors import SourceRateLimited


class BudgetGate:
    """Holds each request of one source until its budget allows it."""

    def __init__(
        self,
        budget: RequestBudget,
        *,
        source: str,
        max_wait_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._budget = budget
        self._source = source
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()

    @property
    def budget(self) -> RequestBudget:
        return self._budget

    async def acquire(self) -> None:
        """Wait for the next slot and take it."""
        async with self._lock:
            while True:
                now_s = self._clock()
                slot_s = self._budget.next_slot_s(now_s)
                if slot_s <= now_s:
                    self._budget = self._budget.spent(now_s)
                    return
                wait_s = slot_s - now_s
                if wait_s > self._max_wait_s:
                    raise SourceRateLimited(
                        self._source,
                        f"the request budget has no slot for {wait_s:.0f}s (the API asked to "
                        "slow down, or the budget is spent); the relay waits before reading on",
                        retry_after_s=wait_s,
                    )
                await self._sleep(wait_s)

    def rate_limited(self, retry_after_s: float | None, *, blocks: bool = True) -> None:
        """The API answered 429; `blocks`: hold every request for its `Retry-After`."""
        self._budget = self._budget.rate_limited(
            now_s=self._clock(), retry_after_s=retry_after_s if blocks else None
        )

    def succeeded(self) -> None:
        self._budget = self._budget.succeeded()
