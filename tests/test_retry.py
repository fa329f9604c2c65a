"""The pure retry maths: backoff caps, full jitter bounds, Retry-After parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from relay.domain.delivery import parse_retry_after
from relay.source.retry import RetryPolicy

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_retries=3, backoff_s=0.5, backoff_max_s=30.0)


@pytest.mark.parametrize(
    ("attempt", "cap_s"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (7, 30.0), (1000, 30.0)],
)
def test_backoff_cap_doubles_until_the_maximum(attempt: int, cap_s: float) -> None:
    assert POLICY.backoff_cap_s(attempt) == cap_s


def test_backoff_cap_refuses_a_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        POLICY.backoff_cap_s(-1)


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 8])
def test_full_jitter_stays_within_the_cap_and_spreads(attempt: int) -> None:
    rng = random.Random(42)
    delays = [POLICY.backoff_delay_s(attempt, rng=rng) for _ in range(500)]
    cap_s = POLICY.backoff_cap_s(attempt)
    assert all(0.0 <= d <= cap_s for d in delays)
    # Full jitter uses the whole range, not a band near the cap.
    assert min(delays) < cap_s * 0.1
    assert max(delays) > cap_s * 0.9


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    first = [POLICY.backoff_delay_s(a, rng=random.Random(7)) for a in range(4)]
    second = [POLICY.backoff_delay_s(a, rng=random.Random(7)) for a in range(4)]
    assert first == second


@pytest.mark.parametrize(
    ("attempt", "retry_after_s", "expected"),
    [
        (0, 2.0, 2.0),  # Retry-After is obeyed exactly
        (2, 0.0, 0.0),
        (0, 30.0, 30.0),  # up to the cap
        (0, 30.5, None),  # longer than the cap: give up and let the poller wait
        (3, 1.0, None),  # retries exhausted
        (3, None, None),
    ],
)
def test_next_delay(attempt: int, retry_after_s: float | None, expected: float | None) -> None:
    rng = random.Random(0)
    assert POLICY.next_delay_s(attempt, retry_after_s=retry_after_s, rng=rng) == expected


def test_next_delay_without_retry_after_is_jittered_backoff() -> None:
    for attempt in range(3):
        delay_s = POLICY.next_delay_s(attempt, retry_after_s=None, rng=random.Random(attempt))
        assert delay_s is not None
        assert 0.0 <= delay_s <= POLICY.backoff_cap_s(attempt)


def test_zero_retries_gives_up_at_once() -> None:
    policy = RetryPolicy(max_retries=0, backoff_s=1.0, backoff_max_s=5.0)
    assert policy.next_delay_s(0, retry_after_s=None, rng=random.Random(0)) is None


@pytest.mark.parametrize(
    ("max_retries", "backoff_s", "backoff_max_s", "match"),
    [(-1, 1.0, 1.0, "max_retries"), (1, -1.0, 1.0, "backoff"), (1, 1.0, -1.0, "backoff")],
)
def test_policy_refuses_negative_values(
    max_retries: int, backoff_s: float, backoff_max_s: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy(max_retries=max_retries, backoff_s=backoff_s, backoff_max_s=backoff_max_s)


@pytest.mark.parametrize(
    ("header", "expected_s"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("-5", None),
        ("soon", None),
        ("1e3", None),
        # HTTP-date, IMF-fixdate form, 90 s after NOW
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        # an offset other than GMT is honoured
        ("Sun, 01 Mar 2026 13:00:10 +0100", 10.0),
        # -0000 means UTC
        ("Sun, 01 Mar 2026 12:00:05 -0000", 5.0),
        # obsolete RFC 850 form
        ("Sunday, 01-Mar-26 12:00:20 GMT", 20.0),
        # a date in the past means now
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("Sun, 32 Mar 2026 11:00:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, expected_s: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected_s


def test_parse_retry_after_uses_the_given_clock() -> None:
    header = "Sun, 01 Mar 2026 12:01:00 GMT"
    assert parse_retry_after(header, now=NOW + timedelta(seconds=45)) == 15.0
