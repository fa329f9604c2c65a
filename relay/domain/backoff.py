"""Exponential backoff with jitter: the one formula behind every retry of the relay.

Used by the Zaia API client's retries (`relay.source.retry`), the sinks' retries and
pauses (`relay.domain.delivery.Backoff`) and the poll schedule after failed cycles
(`relay.domain.schedule`); each keeps its own bounds on top of it.

Invariants:
- Pure: `rng` is passed in, nothing sleeps or reads a clock.
- The ceiling after `failures` consecutive failures is `base_s * 2**(failures - 1)`,
  at most `max_s`; the exponent is capped first, so a source failing for days gets the
  maximum instead of an `OverflowError`.
- Jitter only ever shortens the ceiling, by a uniform fraction of at most `jitter`: the
  delay is in `[ceiling * (1 - jitter), ceiling]`. `jitter=1` is "full jitter", so
  many relays (or notifications) that failed together do not retry together.
"""

from __future__ import annotations

import math
import random

# 2**64 times any sensible base is far beyond any cap, and still fits a float.
_MAX_EXPONENT = 64
FULL_JITTER = 1.0


def backoff_ceiling_s(failures: int, *, base_s: float, max_s: float) -> float:
    """The longest wait after `failures` consecutive failures (1 for the first)."""
    if failures < 1:
        raise ValueError("failures counts the failure just seen: 1 or more")
    exponent = min(failures - 1, _MAX_EXPONENT)
    return min(max_s, base_s * math.pow(2, exponent))


def backoff_delay_s(
    failures: int,
    *,
    base_s: float,
    max_s: float,
    rng: random.Random,
    jitter: float = FULL_JITTER,
) -> float:
    """A wait drawn from `[ceiling * (1 - jitter), ceiling]` (see the module invariants)."""
    if not 0 <= jitter <= 1:
        raise ValueError("jitter must be in [0, 1]")
    ceiling_s = backoff_ceiling_s(failures, base_s=base_s, max_s=max_s)
    return ceiling_s * (1.0 - jitter * rng.random())


__all__ = ["FULL_JITTER", "backoff_ceiling_s", "backoff_delay_s"]
