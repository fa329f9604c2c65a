import random

import pytest

from relay.domain.schedule import failure_delay_s, next_start, next_tick


@pytest.mark.parametrize(
    ("previous_tick", "interval_s", "now", "expected"),
    [
        (0.0, 15.0, 0.2, 15.0),  # a quick cycle: the next tick on schedule
        (0.0, 15.0, 14.99, 15.0),  # a slow cycle still inside its interval
        (0.0, 15.0, 15.0, 30.0),  # exactly on the tick: the tick after, no overlap
        (0.0, 15.0, 47.0, 60.0),  # overran three ticks: no burst, the next future one
        (100.0, 5.0, 101.0, 105.0),  # schedule anchored at its start, not at the cycle's end
    ],
)
def test_next_tick_is_fixed_rate_without_catch_up(
    previous_tick: float, interval_s: float, now: float, expected: float
) -> None:
    assert next_tick(previous_tick=previous_tick, interval_s=interval_s, now=now) == expected


def test_next_tick_rejects_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        next_tick(previous_tick=0.0, interval_s=0.0, now=1.0)


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 10, 30])
def test_failure_delay_grows_but_is_capped_and_never_below_the_interval(failures: int) -> None:
    rng = random.Random(failures)
    delays = [
        failure_delay_s(consecutive_failures=failures, interval_s=10.0, max_delay_s=300.0, rng=rng)
        for _ in range(200)
    ]
    ceiling = min(300.0, 10.0 * 2 ** (failures - 1))
    assert all(10.0 <= d <= max(10.0, ceiling) for d in delays)
    if ceiling > 20.0:
        assert len(set(delays)) > 100  # jittered, so failing sources do not retry in step


def test_no_failure_means_no_delay() -> None:
    rng = random.Random(0)
    assert failure_delay_s(consecutive_failures=0, interval_s=10, max_delay_s=60, rng=rng) == 0.0


def test_next_start_obeys_retry_after_beyond_the_tick() -> None:
    start = next_start(
        previous_tick=0.0,
        interval_s=15.0,
        now=1.0,
        consecutive_failures=1,
        retry_after_s=40.0,
        max_delay_s=300.0,
        rng=random.Random(1),
    )
    assert start == 41.0


def test_next_start_after_success_is_the_next_tick() -> None:
    start = next_start(
        previous_tick=0.0,
        interval_s=15.0,
        now=3.0,
        consecutive_failures=0,
        retry_after_s=None,
        max_delay_s=300.0,
        rng=random.Random(1),
    )
    assert start == 15.0


def test_a_source_failing_for_days_still_gets_a_bounded_delay() -> None:
    rng = random.Random(0)
    delay = failure_delay_s(consecutive_failures=5000, interval_s=15, max_delay_s=300, rng=rng)
    assert 15 <= delay <= 300
