"""Poll scheduling maths: fixed rate with drift compensation, and backoff after failures.

Pure: times are monotonic seconds passed in by the caller.

- Fixed rate: cycle k starts at `start + k * interval`, not `end of cycle k-1 + interval`,
  so a cycle's own duration does not make the schedule drift.
- No overlap and no catch-up bursts: a cycle that overran one or more ticks is followed
  by the next tick still in the future, never by a rush of missed ones.
- After consecutive failures the wait grows exponentially (with full jitter, so sources
  and replicas that failed together do not retry together), capped, and never shorter
  than the regular tick or a server's `Retry-After`.
"""

from __future__ import annotations

import math
import random

from relay.domain.backoff import backoff_delay_s


def next_tick(*, previous_tick: float, interval_s: float, now: float) -> float:
    """The first tick of the fixed-rate schedule strictly after `now`."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if now < previous_tick + interval_s:
        return previous_tick + interval_s
    missed = math.floor((now - previous_tick) / interval_s)
    return previous_tick + (missed + 1) * interval_s


def failure_delay_s(
    *,
    consecutive_failures: int,
    interval_s: float,
    max_delay_s: float,
    rng: random.Random,
) -> float:
    """How long to wait after the `consecutive_failures`-th failure in a row (>= 1)."""
    if consecutive_failures < 1:
        return 0.0
    # Full jitter from one interval doubling up to `max_delay_s` (a source failing for
    # days keeps the maximum), but never below one regular interval.
    delay_s = backoff_delay_s(consecutive_failures, base_s=interval_s, max_s=max_delay_s, rng=rng)
    return max(interval_s, delay_s)


def next_start(
    *,
    previous_tick: float,
    interval_s: float,
    now: float,
    consecutive_failures: int,
    retry_after_s: float | None,
    max_delay_s: float,
    rng: random.Random,
) -> float:
    """When the next cycle starts, given how the last one went."""
    start = next_tick(previous_tick=previous_tick, interval_s=interval_s, now=now)
    if consecutive_failures:
        start = max(
            start,
            now
            + failure_delay_s(
                consecutive_failures=consecutive_failures,
                interval_s=interval_s,
                max_delay_s=max_delay_s,
                rng=rng,
            ),
        )
    if retry_after_s is not None:
        start = max(start, now + retry_after_s)
    return start
