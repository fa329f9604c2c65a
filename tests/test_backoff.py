"""The one backoff formula: doubling from a base, capped, jitter that only shortens."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.backoff import FULL_JITTER, backoff_ceiling_s, backoff_delay_s


@pytest.mark.parametrize(
    ("failures", "ceiling_s"),
    [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (10**6, 60.0)],
)
def test_the_ceiling_doubles_up_to_the_maximum(failures: int, ceiling_s: float) -> None:
    assert backoff_ceiling_s(failures, base_s=2.0, max_s=60.0) == ceiling_s


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="failures"):
        backoff_ceiling_s(0, base_s=1.0, max_s=10.0)
    with pytest.raises(ValueError, match="jitter"):
        backoff_delay_s(1, base_s=1.0, max_s=10.0, rng=random.Random(0), jitter=1.5)


@given(
    failures=st.integers(1, 10_000),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_jitter_only_shortens_the_ceiling(failures: int, jitter: float, seed: int) -> None:
    ceiling_s = backoff_ceiling_s(failures, base_s=0.5, max_s=300.0)
    delay_s = backoff_delay_s(
        failures, base_s=0.5, max_s=300.0, rng=random.Random(seed), jitter=jitter
    )
    assert ceiling_s * (1 - jitter) - 1e-9 <= delay_s <= ceiling_s


def test_full_jitter_uses_the_whole_range() -> None:
    rng = random.Random(3)
    delays = [
        backoff_delay_s(4, base_s=1.0, max_s=100.0, rng=rng, jitter=FULL_JITTER) for _ in range(500)
    ]
    assert min(delays) < 0.8
    assert max(delays) > 7.2


def test_no_jitter_is_the_ceiling() -> None:
    delay_s = backoff_delay_s(3, base_s=1.0, max_s=100.0, rng=random.Random(0), jitter=0.0)
    assert delay_s == 4.0
