"""Pure delivery decisions: classification, backoff, `Retry-After`, rate limits, digests.

Invariants:
- Nothing here sleeps, reads a clock or does I/O: `now` and `rng` are passed in, so every
  decision is a plain function of its arguments and is tested as a table.
- Classification of an HTTP answer: 2xx delivered; 408, 429 and 5xx retried; a redirect
  (3xx, never followed) and every other 4xx are dead at once: the receiver answered on
  purpose, and the same request would get the same answer until an operator fixes the
  sink and replays the dead letters.
- SMTP replies: 4xx retried, 5xx dead at once (`classify_smtp_reply`).
- A retry is never scheduled sooner than the server's `Retry-After`, and never later than
  `max_age` after the notification was first enqueued: a notification that cannot be
  delivered within `max_age` goes to the dead-letter queue instead.
- A `Retry-After` is bounded once, by `bounded_retry_after`, for sinks and the Zaia API
  alike: past the cap, unreadable, negative or infinite, it counts as the cap, so no
  answer can pause a sink or a source for longer (nor overflow a date).
- Backoff delays grow exponentially from `initial_s` up to `max_s`; jitter only ever
  shortens a delay (by at most `jitter`), so the schedule is an upper bound (the
  formula is `relay.domain.backoff`'s).
- A token bucket never holds more than its capacity and never goes negative.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal, TypeVar

from relay.domain.backoff import backoff_ceiling_s, backoff_delay_s
from relay.durations import format_rough_s

Verdict = Literal["ok", "retry", "dead"]

# Slack's documented limit is 1 message a second "with short bursts allowed"; a bucket of
# three absorbs a firing and its resolve arriving together without a second of delay.
DEFAULT_BURST = 3.0
_RETRYABLE_4XX = frozenset({408, 429})
# RFC 9110 says delta-seconds is a non-negative integer; a decimal is accepted too
# because some proxies send one, and refusing it would only make us retry sooner.
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_T = TypeVar("_T")


def classify_status(status_code: int) -> Verdict:
    """What an HTTP status means for a delivery (see the module invariants)."""
    if 200 <= status_code < 300:
        return "ok"
    if status_code in _RETRYABLE_4XX or 500 <= status_code < 600:
        return "retry"
    if 300 <= status_code < 500:
        return "dead"
    # 1xx as a final answer, or a status outside HTTP's range: a broken proxy in between.
    return "retry"


def classify_smtp_reply(codes: Sequence[int]) -> Verdict:
    """The final SMTP replies of an attempt (one, or one a refused recipient): all 2xx/3xx
    ok; all 5xx dead; any 4xx, or a code outside SMTP's range (a broken server), retry."""
    if codes and all(200 <= code < 400 for code in codes):
        return "ok"
    return "dead" if codes and all(500 <= code < 600 for code in codes) else "retry"


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait according to a `Retry-After` header, or None if absent or unreadable.

    Accepts delta-seconds (`120`) and an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`); a
    date in the past means "now" (0 seconds).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # `-0000`: RFC 5322 calls that UTC with an unknown local zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """A `Retry-After` as obeyed: `seconds` within `[0, cap]`; `capped` when the header
    said more, or something unreadable, and the cap was used instead."""

    seconds: float
    capped: bool


def bounded_retry_after(value: str | None, *, now: datetime, max_s: float) -> RetryAfter | None:
    """The wait a `Retry-After` header asks for, at most `max_s`; None when absent."""
    if value is None or not value.strip():
        return None
    seconds = parse_retry_after(value, now=now)
    bounded = capped_wait_s(max_s if seconds is None else seconds, max_s=max_s)
    return RetryAfter(bounded, capped=seconds is None or bounded != seconds)


def capped_wait_s(seconds: float, *, max_s: float) -> float:
    """The one rule for a server's wait: `seconds` if within `[0, max_s]`; past it,
    negative, infinite or not a number, `max_s`."""
    if not math.isfinite(seconds) or not 0 <= seconds <= max_s:
        return max_s
    return seconds


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: `initial_s`, then doubling, capped at `max_s`, minus jitter."""

    initial_s: float = 1.0
    max_s: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def cap_s(self, failures: int) -> float:
        """The scheduled delay after `failures` consecutive failures (1 for the first)."""
        return backoff_ceiling_s(failures, base_s=self.initial_s, max_s=self.max_s)

    def delay_s(self, failures: int, *, rng: random.Random) -> float:
        """A delay in `[cap_s * (1 - jitter), cap_s]`, so retries of many notifications
        that failed together spread out instead of arriving together."""
        return backoff_delay_s(
            failures, base_s=self.initial_s, max_s=self.max_s, rng=rng, jitter=self.jitter
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryPolicy:
    """How one sink is delivered to; built from its settings by the registry."""

    backoff: Backoff = Backoff()
    max_age_s: float = 86400.0
    # None: no rate limit. Otherwise messages a second, and how many may go at once.
    rate_per_s: float | None = None
    burst: float = DEFAULT_BURST
    # Notifications due within `group_wait_s` of the first one are sent together.
    group_wait_s: float = 0.0
    # The most notifications one message (request) carries.
    max_batch: int = 1
    # One attempt, from start to last byte; leases are sized from it.
    timeout_s: float = 10.0
    # The longest a receiver's `Retry-After` may pause the sink.
    max_retry_after_s: float = 900.0

    def __post_init__(self) -> None:
        if self.max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if self.rate_per_s is not None and (self.rate_per_s <= 0 or self.burst < 1):
            raise ValueError("rate_per_s must be positive and burst at least 1")
        if self.group_wait_s < 0 or self.max_batch < 1:
            raise ValueError("group_wait_s must be >= 0 and max_batch >= 1")
        if self.timeout_s <= 0 or self.max_retry_after_s <= 0:
            raise ValueError("timeout_s and max_retry_after_s must be positive")


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do with a notification whose delivery just failed."""

    outcome: Literal["retry", "dead"]
    next_attempt_at: datetime | None
    reason: str


def after_failure(
    error: str,
    *,
    retryable: bool,
    retry_after_s: float | None,
    failures: int,
    first_enqueued_at: datetime,
    now: datetime,
    policy: DeliveryPolicy,
    rng: random.Random,
    not_before: datetime | None = None,
) -> RetryDecision:
    """Retry later, or give up into the dead-letter queue.

    `failures` counts the failed attempts of this notification, the one just seen
    included. The delay is the backoff for that many failures, or the server's
    `Retry-After` when that is longer, and not before `not_before` (the sink's pause).
    Whatever they say, a retry that would come after `max_age` is a dead letter now.
    """
    if not retryable:
        return RetryDecision("dead", None, error)
    delay_s = policy.backoff.delay_s(failures, rng=rng)
    if retry_after_s is not None:
        delay_s = max(delay_s, capped_wait_s(retry_after_s, max_s=policy.max_retry_after_s))
    # Bounded by max_age before it becomes a date: no delay can overflow one.
    delay_s = min(delay_s, policy.max_age_s + 1.0)
    next_attempt_at = now + timedelta(seconds=delay_s)
    if not_before is not None:
        next_attempt_at = max(next_attempt_at, not_before)
    if next_attempt_at > first_enqueued_at + timedelta(seconds=policy.max_age_s):
        return given_up(
            error, failures=failures, first_enqueued_at=first_enqueued_at, now=now, policy=policy
        )
    return RetryDecision("retry", next_attempt_at, error)


@dataclass(frozen=True, slots=True)
class Attempted:
    """What a message's failure needs to know of one of its notifications."""

    failures: int  # failed attempts, the one just seen included
    first_enqueued_at: datetime


def message_after_failure(
    error: str,
    *,
    members: Sequence[Attempted],
    retryable: bool,
    retry_after_s: float | None,
    now: datetime,
    policy: DeliveryPolicy,
    rng: random.Random,
    not_before: datetime | None = None,
) -> list[RetryDecision]:
    """`after_failure` for each notification of a failed message, with ONE retry time
    for all: they come due together and go together again, so a retried batch or
    group keeps its members and its `webhook-id`. A notification for which that time
    is past its `max_age` is dead instead."""
    decisions = [
        after_failure(
            error,
            retryable=retryable,
            retry_after_s=retry_after_s,
            failures=m.failures,
            first_enqueued_at=m.first_enqueued_at,
            now=now,
            policy=policy,
            rng=rng,
            not_before=not_before,
        )
        for m in members
    ]
    retry_times = [d.next_attempt_at for d in decisions if d.next_attempt_at is not None]
    if not retry_times:
        return decisions
    next_at = max(retry_times)
    max_age = timedelta(seconds=policy.max_age_s)
    settled: list[RetryDecision] = []
    for member, decision in zip(members, decisions, strict=True):
        if decision.outcome == "retry" and next_at > member.first_enqueued_at + max_age:
            # Another notification of the message set the time, past this one's max_age.
            decision = given_up(
                error,
                failures=member.failures,
                first_enqueued_at=member.first_enqueued_at,
                now=now,
                policy=policy,
            )
        elif decision.outcome == "retry":
            decision = RetryDecision("retry", next_at, error)
        settled.append(decision)
    return settled


def given_up(
    error: str, *, failures: int, first_enqueued_at: datetime, now: datetime, policy: DeliveryPolicy
) -> RetryDecision:
    """Dead: the next attempt could only come after `max_age`."""
    age = format_rough_s((now - first_enqueued_at).total_seconds())
    limit = format_rough_s(policy.max_age_s)
    reason = f"gave up after {failures} attempt(s) over {age} (max_age {limit}): {error}"
    return RetryDecision("dead", None, reason)


@dataclass(frozen=True, slots=True)
class SinkHealth:
    """Whether a sink may be sent to now. After a retryable failure the whole sink pauses
    (for `Retry-After`, or the backoff of its consecutive failures), and while it is
    failing only one message is tried at a time: a sink that is down or says 429 is
    never hammered with the rest of the queue."""

    consecutive_failures: int = 0
    paused_until: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    def after_success(self) -> SinkHealth:
        return SinkHealth()

    def after_failure(
        self,
        *,
        retry_after_s: float | None,
        now: datetime,
        backoff: Backoff,
        rng: random.Random,
        max_retry_after_s: float = 900.0,
    ) -> SinkHealth:
        failures = self.consecutive_failures + 1
        pause_s = backoff.delay_s(failures, rng=rng)
        if retry_after_s is not None:
            pause_s = max(pause_s, capped_wait_s(retry_after_s, max_s=max_retry_after_s))
        until = now + timedelta(seconds=pause_s)
        if self.paused_until is not None:
            until = max(until, self.paused_until)
        return SinkHealth(consecutive_failures=failures, paused_until=until)


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """A token bucket: `rate_per_s` tokens a second, at most `capacity` saved up."""

    rate_per_s: float
    capacity: float
    tokens: float
    updated_at: datetime

    @classmethod
    def full(cls, *, rate_per_s: float, capacity: float, now: datetime) -> TokenBucket:
        if rate_per_s <= 0 or capacity < 1:
            raise ValueError("rate_per_s must be positive and capacity at least 1")
        return cls(rate_per_s=rate_per_s, capacity=capacity, tokens=capacity, updated_at=now)

    def refill(self, now: datetime) -> TokenBucket:
        # A clock that stepped back adds nothing rather than removing tokens.
        elapsed_s = max(0.0, (now - self.updated_at).total_seconds())
        tokens = min(self.capacity, self.tokens + elapsed_s * self.rate_per_s)
        return replace(self, tokens=tokens, updated_at=max(now, self.updated_at))

    def available(self, now: datetime) -> int:
        """Whole tokens that can be taken at `now`."""
        return math.floor(self.refill(now).tokens + 1e-9)

    def take(self, now: datetime, count: int = 1) -> TokenBucket:
        bucket = self.refill(now)
        if count > bucket.available(now):
            raise ValueError(f"only {bucket.tokens:.2f} token(s) available, asked for {count}")
        return replace(bucket, tokens=max(0.0, bucket.tokens - count))

    def ready_at(self, now: datetime, count: int = 1) -> datetime:
        """The earliest time at which `count` tokens are available (`now` if they are)."""
        bucket = self.refill(now)
        missing = count - bucket.tokens
        if missing <= 1e-9:
            return now
        return now + timedelta(seconds=missing / bucket.rate_per_s)


def digest_ready_at(first_due_at: datetime, *, group_wait_s: float) -> datetime:
    """When a message holding the notification due at `first_due_at` may be sent: after
    waiting `group_wait_s` for others to join it."""
    return first_due_at + timedelta(seconds=group_wait_s)


def batches(items: Sequence[_T], *, max_batch: int) -> list[list[_T]]:
    """`items` in order, cut into messages of at most `max_batch`."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    return [list(items[i : i + max_batch]) for i in range(0, len(items), max_batch)]


__all__ = [
    "DEFAULT_BURST",
    "Attempted",
    "Backoff",
    "DeliveryPolicy",
    "RetryAfter",
    "RetryDecision",
    "SinkHealth",
    "TokenBucket",
    "Verdict",
    "after_failure",
    "batches",
    "bounded_retry_after",
    "capped_wait_s",
    "classify_status",
    "digest_ready_at",
    "given_up",
    "message_after_failure",
    "parse_retry_after",
]
