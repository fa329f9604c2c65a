"""The request budget of one source: at most `limit` API requests in any rolling window.

Pure: times are monotonic seconds passed in; a `RequestBudget` is a frozen value and
every event returns the next one.

Invariants:
- Hard ceiling: a request is only ever placed at a `next_slot_s` time, and that time
  leaves fewer than `limit` requests in the window before it, so no window of
  `window_s` seconds (ending anywhere) ever holds more than `limit` requests. Every
  request counts: list pages, reads by id, nestings and retries alike.
- Pace: requests are spread at least `1 / rate_per_s` apart, so the budget is spent
  evenly through the window instead of in a burst at its start.
- A 429 halves the rate the relay allows itself (never below `floor_fraction` of the
  budget) and blocks every request until its `Retry-After` has passed; each success
  then climbs the rate back by `climb_fraction` of the budget, up to the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

DEFAULT_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestBudget:
    """How many requests one source may still make, and when the next one may go."""

    limit: int
    window_s: float = DEFAULT_WINDOW_S
    # The rate the relay allows itself now: the budget's, or less after a 429.
    rate_per_s: float = 0.0
    blocked_until_s: float = float("-inf")
    floor_fraction: float = 0.1
    climb_fraction: float = 0.05
    # Send times of the requests still inside the window, oldest first.
    sent_s: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0:
            raise ValueError("a budget needs limit >= 1 and a positive window")
        if self.rate_per_s <= 0:
            object.__setattr__(self, "rate_per_s", self.budget_rate_per_s)

    @classmethod
    def per_minute(cls, requests_per_minute: float, *, margin_s: float = 0.0) -> RequestBudget:
        """A budget of `requests_per_minute` in any rolling minute. Under one a minute,
        the window grows to hold one whole request (0.5/min: 1 in any two minutes), so a
        fraction is never rounded up into more than was allowed. `margin_s` widens the
        window the relay counts in: requests are counted when sent, and one delayed on
        its way (a new connection) must not make a minute at the API hold one too many."""
        if requests_per_minute <= 0:
            raise ValueError("a budget needs a positive rate")
        if requests_per_minute < 1:
            return cls(limit=1, window_s=DEFAULT_WINDOW_S / requests_per_minute + margin_s)
        return cls(limit=int(requests_per_minute), window_s=DEFAULT_WINDOW_S + margin_s)

    @property
    def budget_rate_per_s(self) -> float:
        """The rate that spends exactly the whole budget."""
        return self.limit / self.window_s

    @property
    def throttled(self) -> bool:
        """Whether a 429 made the relay slow down below its budget."""
        return self.rate_per_s < self.budget_rate_per_s

    def used(self, now_s: float) -> int:
        """Requests made in the window that ends at `now_s`."""
        return sum(1 for sent in self.sent_s if sent > now_s - self.window_s)

    def next_slot_s(self, now_s: float) -> float:
        """The earliest time, not before `now_s`, at which a request may be sent."""
        slot = max(now_s, self.blocked_until_s)
        if self.sent_s:
            slot = max(slot, self.sent_s[-1] + 1.0 / self.rate_per_s)
        recent = [sent for sent in self.sent_s if sent > slot - self.window_s]
        if len(recent) >= self.limit:
            # The window ending at `slot` is full: wait until enough of it has expired
            # that one more request leaves `limit` in it, no more.
            slot = max(slot, recent[len(recent) - self.limit] + self.window_s)
        return slot

    def spent(self, at_s: float) -> RequestBudget:
        """Record a request sent at `at_s` (which must be a slot this budget allowed)."""
        if at_s < self.next_slot_s(at_s) - 1e-9:
            raise ValueError(f"a request at {at_s} is not allowed before {self.next_slot_s(at_s)}")
        kept = tuple(sent for sent in self.sent_s if sent > at_s - self.window_s)
        return replace(self, sent_s=(*kept, at_s))

    def rate_limited(self, *, now_s: float, retry_after_s: float | None) -> RequestBudget:
        """The API answered 429: halve the rate and respect its `Retry-After`."""
        floor = self.budget_rate_per_s * self.floor_fraction
        blocked = self.blocked_until_s
        if retry_after_s is not None:
            blocked = max(blocked, now_s + max(0.0, retry_after_s))
        return replace(self, rate_per_s=max(floor, self.rate_per_s / 2), blocked_until_s=blocked)

    def succeeded(self) -> RequestBudget:
        """A request went through: climb back towards the budget."""
        if not self.throttled:
            return self
        climbed = self.rate_per_s + self.budget_rate_per_s * self.climb_fraction
        return replace(self, rate_per_s=min(self.budget_rate_per_s, climbed))
