"""Pure delivery decisions: classification, Retry-After, backoff, retry/dead, sink
health, token bucket, batching. Plain tables plus hypothesis invariants."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.delivery import (
    Backoff,
    DeliveryPolicy,
    SinkHealth,
    TokenBucket,
    after_failure,
    batches,
    classify_status,
    digest_ready_at,
    parse_retry_after,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ok"),
        (201, "ok"),
        (202, "ok"),
        (204, "ok"),
        (299, "ok"),
        (301, "dead"),  # redirects are not followed: the URL is wrong
        (302, "dead"),
        (307, "dead"),
        (308, "dead"),
        (400, "dead"),
        (401, "dead"),
        (403, "dead"),
        (404, "dead"),
        (405, "dead"),
        (410, "dead"),
        (413, "dead"),
        (422, "dead"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (599, "retry"),
        (101, "retry"),  # not a final answer: something in between is broken
        (600, "retry"),
    ],
)
def test_classification_table(status: int, verdict: str) -> None:
    assert classify_status(status) == verdict


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("5", 5.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-3", None),
        ("soon", None),
        ("Mon, 02 Mar 2026 09:00:30 GMT", 30.0),
        ("Mon, 02 Mar 2026 08:00:00 GMT", 0.0),  # in the past: now
        ("Mon, 02 Mar 2026 09:01:00 -0000", 60.0),
    ],
)
def test_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


@pytest.mark.parametrize(
    ("failures", "cap_s"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0), (100, 300.0), (10**6, 300.0)],
)
def test_backoff_defaults_first_1s_cap_5min(failures: int, cap_s: float) -> None:
    assert Backoff().cap_s(failures) == cap_s


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="failures"):
        Backoff().cap_s(0)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=10, max_s=1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.0)


@given(failures=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_backoff_jitter_only_shortens(failures: int, seed: int) -> None:
    backoff = Backoff(initial_s=1, max_s=300, jitter=0.2)
    delay = backoff.delay_s(failures, rng=random.Random(seed))
    cap = backoff.cap_s(failures)
    assert cap * 0.8 <= delay <= cap


def test_backoff_spreads_retries() -> None:
    rng = random.Random(7)
    delays = {round(Backoff().delay_s(5, rng=rng), 6) for _ in range(50)}
    assert len(delays) > 40


POLICY = DeliveryPolicy(backoff=Backoff(initial_s=1, max_s=300, jitter=0), max_age_s=3600)


@pytest.mark.parametrize(
    ("retryable", "retry_after_s", "failures", "age_s", "outcome", "delay_s"),
    [
        (True, None, 1, 0, "retry", 1.0),  # first retry after 1 s
        (True, None, 2, 5, "retry", 2.0),
        (True, None, 5, 60, "retry", 16.0),
        (True, None, 20, 600, "retry", 300.0),  # capped at 5 min
        (True, 5.0, 1, 0, "retry", 5.0),  # Retry-After longer than the backoff wins
        (True, 0.5, 3, 0, "retry", 4.0),  # ...and never shortens it
        (True, 900.0, 1, 0, "retry", 900.0),  # even beyond the cap
        (True, None, 12, 3299, "retry", 300.0),  # lands exactly on max_age: still allowed
        (True, None, 12, 3301, "dead", None),  # would retry after max_age: dead now
        (True, 7200.0, 1, 0, "retry", 900.0),  # past max_retry_after (15m): counts as it
        (True, 3000.0, 1, 3000, "dead", None),  # capped, but still past max_age: dead now
        (False, None, 1, 0, "dead", None),  # refused: dead at once
        (False, 5.0, 1, 0, "dead", None),
    ],
)
def test_after_failure_table(
    retryable: bool,
    retry_after_s: float | None,
    failures: int,
    age_s: float,
    outcome: str,
    delay_s: float | None,
) -> None:
    decision = after_failure(
        "HTTP 503",
        retryable=retryable,
        retry_after_s=retry_after_s,
        failures=failures,
        first_enqueued_at=NOW - timedelta(seconds=age_s),
        now=NOW,
        policy=POLICY,
        rng=random.Random(0),
    )
    assert decision.outcome == outcome
    if delay_s is None:
        assert decision.next_attempt_at is None
    else:
        assert decision.next_attempt_at == NOW + timedelta(seconds=delay_s)
    assert "HTTP 503" in decision.reason


def test_after_failure_dead_reason_says_max_age() -> None:
    decision = after_failure(
        "HTTP 500",
        retryable=True,
        retry_after_s=None,
        failures=30,
        first_enqueued_at=NOW - timedelta(hours=1),
        now=NOW,
        policy=POLICY,
        rng=random.Random(0),
    )
    assert decision.outcome == "dead"
    assert decision.reason == "gave up after 30 attempt(s) over 60m (max_age 60m): HTTP 500"


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        DeliveryPolicy(max_age_s=0)
    with pytest.raises(ValueError, match="rate_per_s"):
        DeliveryPolicy(rate_per_s=0)
    with pytest.raises(ValueError, match="max_batch"):
        DeliveryPolicy(max_batch=0)
    with pytest.raises(ValueError, match="timeout_s"):
        DeliveryPolicy(timeout_s=0)


def test_sink_health_pauses_and_recovers() -> None:
    backoff = Backoff(initial_s=1, max_s=300, jitter=0)
    rng = random.Random(0)
    health = SinkHealth()
    assert not health.failing
    assert not health.paused(NOW)
    health = health.after_failure(retry_after_s=None, now=NOW, backoff=backoff, rng=rng)
    assert health.consecutive_failures == 1
    assert health.paused_until == NOW + timedelta(seconds=1)
    assert health.paused(NOW + timedelta(seconds=0.999))
    assert not health.paused(NOW + timedelta(seconds=1))
    later = NOW + timedelta(seconds=1)
    health = health.after_failure(retry_after_s=None, now=later, backoff=backoff, rng=rng)
    assert health.paused_until == later + timedelta(seconds=2)
    # 429 with Retry-After: 5 -> paused 5 s even though the backoff says 4 s.
    later += timedelta(seconds=2)
    health = health.after_failure(retry_after_s=5, now=later, backoff=backoff, rng=rng)
    assert health.paused_until == later + timedelta(seconds=5)
    assert health.after_success() == SinkHealth()


def test_sink_health_never_shortens_a_pause() -> None:
    backoff = Backoff(initial_s=1, max_s=300, jitter=0)
    health = SinkHealth().after_failure(
        retry_after_s=60, now=NOW, backoff=backoff, rng=random.Random(0)
    )
    health = health.after_failure(
        retry_after_s=None, now=NOW, backoff=backoff, rng=random.Random(0)
    )
    assert health.paused_until == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("rate", "capacity", "takes", "available_after"),
    [
        (1.0, 3.0, [(0.0, 3)], [(0.0, 0), (0.5, 0), (1.0, 1), (2.0, 2), (10.0, 3)]),
        (2.0, 1.0, [(0.0, 1)], [(0.0, 0), (0.5, 1), (5.0, 1)]),
        (10.0, 10.0, [(0.0, 5), (0.1, 6)], [(0.1, 0), (0.2, 1), (1.2, 10)]),
    ],
)
def test_token_bucket_table(
    rate: float,
    capacity: float,
    takes: list[tuple[float, int]],
    available_after: list[tuple[float, int]],
) -> None:
    bucket = TokenBucket.full(rate_per_s=rate, capacity=capacity, now=NOW)
    for at_s, count in takes:
        bucket = bucket.take(NOW + timedelta(seconds=at_s), count)
    for at_s, expected in available_after:
        assert bucket.available(NOW + timedelta(seconds=at_s)) == expected, at_s


def test_token_bucket_ready_at_and_refusal() -> None:
    bucket = TokenBucket.full(rate_per_s=1, capacity=3, now=NOW).take(NOW, 3)
    assert bucket.ready_at(NOW) == NOW + timedelta(seconds=1)
    assert bucket.ready_at(NOW, 2) == NOW + timedelta(seconds=2)
    assert bucket.ready_at(NOW + timedelta(seconds=5)) == NOW + timedelta(seconds=5)
    with pytest.raises(ValueError, match="token"):
        bucket.take(NOW)


def test_token_bucket_clock_stepping_back_adds_nothing() -> None:
    bucket = TokenBucket.full(rate_per_s=1, capacity=3, now=NOW).take(NOW, 3)
    assert bucket.available(NOW - timedelta(hours=1)) == 0


@given(
    rate=st.floats(0.1, 50),
    capacity=st.integers(1, 10),
    gaps=st.lists(st.floats(0, 3), min_size=1, max_size=60),
)
def test_token_bucket_never_exceeds_its_rate(rate: float, capacity: int, gaps: list[float]) -> None:
    """Taking greedily at arbitrary instants, the messages sent over any run never exceed
    capacity + rate * elapsed, and the bucket stays within [0, capacity]."""
    bucket = TokenBucket.full(rate_per_s=rate, capacity=capacity, now=NOW)
    at = NOW
    sent = 0
    for gap in gaps:
        at += timedelta(seconds=gap)
        available = bucket.available(at)
        if available:
            bucket = bucket.take(at, available)
            sent += available
        assert 0 <= bucket.tokens <= capacity
        elapsed = (at - NOW).total_seconds()
        assert sent <= capacity + rate * elapsed + 1e-6


def test_batches_and_digest_wait() -> None:
    assert batches([1, 2, 3, 4, 5], max_batch=2) == [[1, 2], [3, 4], [5]]
    assert batches([], max_batch=3) == []
    assert batches([1], max_batch=1000) == [[1]]
    with pytest.raises(ValueError, match="max_batch"):
        batches([1], max_batch=0)
    assert digest_ready_at(NOW, group_wait_s=10) == NOW + timedelta(seconds=10)
    assert digest_ready_at(NOW, group_wait_s=0) == NOW
