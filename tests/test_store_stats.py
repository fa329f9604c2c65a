"""`Store.execution_stats` on both backends: buckets split exactly at their edges, what
ended after now counts in the last bucket, running executions count nowhere, durations
come back as the histogram `relay.domain.exec_stats` reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from relay.domain.exec_stats import ms_bin, nearest_rank, stats_rows
from relay.store import Store
from tests import store_backends
from tests.stats_kit import commit_states, ended

backend, store = store_backends.backend, store_backends.store

NOW = datetime(2026, 3, 2, 9, 0, 0, 500_000, tzinfo=UTC)
SINCE = NOW - timedelta(hours=1)  # 12 buckets of 5 minutes


def _at(bucket: int, *, plus_us: int = 0) -> datetime:
    return SINCE + timedelta(minutes=5 * bucket, microseconds=plus_us)


async def test_counts_fall_in_the_bucket_their_end_is_in(store: Store) -> None:
    states = [
        ended(1, at=_at(0, plus_us=-1)),  # a microsecond before the window: left out
        ended(2, at=_at(0)),  # exactly at the start: bucket 0
        ended(3, at=_at(1, plus_us=-1), status="failed", credits=2.5),  # last microsecond of 0
        ended(4, at=_at(1)),  # first microsecond of 1
        ended(5, at=_at(11, plus_us=1), responder="resp-2", status="failed"),
        ended(6, at=NOW + timedelta(seconds=30), responder="resp-2"),  # ahead: the last bucket
        ended(7, at=_at(5), status="running"),  # no end: nowhere
        ended(8, at=_at(6), source="staging", status="cancelled", credits=4.0),
    ]
    await commit_states(store, states, at=NOW)
    stats = await store.execution_stats(now=NOW, bucket_s=300, buckets=12)
    assert stats.since == SINCE
    assert (stats.bucket_s, stats.buckets) == (300, 12)
    table = [
        (c.source, c.responder_id, c.bucket, c.executions, c.failed, c.credits)
        for c in stats.counts
    ]
    assert table == [
        ("prod", "resp-1", 0, 2, 1, 3.5),
        ("prod", "resp-1", 1, 1, 0, 1.0),
        ("prod", "resp-2", 11, 2, 1, 2.0),
        ("staging", "resp-1", 6, 1, 0, 4.0),
    ]


async def test_durations_come_back_as_a_histogram_of_two_digit_milliseconds(
    store: Store,
) -> None:
    durations_s = [0.0421, 0.5, 1.234, 1.299, 12.5, 95.0, 3600.0] + [2.0] * 13
    states = [
        ended(n, at=NOW - timedelta(minutes=n + 1), duration_s=d) for n, d in enumerate(durations_s)
    ]
    await commit_states(store, states, at=NOW)
    stats = await store.execution_stats(now=NOW, bucket_s=3600, buckets=24)
    expected: dict[int, int] = {}
    for d in durations_s:
        expected[ms_bin(round(d * 1000))] = expected.get(ms_bin(round(d * 1000)), 0) + 1
    assert dict(stats.durations_ms) == {("prod", "resp-1"): expected}
    assert expected[1200] == 2
    assert expected[42] == 1
    (total, responder) = stats_rows(
        stats.counts, buckets=24, durations_ms=stats.durations_ms, names={}
    )
    exact = nearest_rank(durations_s)  # rank 19 of 20: 95 s
    assert exact == 95.0
    assert responder.p95_s == total.p95_s
    assert responder.p95_s is not None
    assert 95.0 <= responder.p95_s <= 96.0


async def test_an_empty_window_and_bad_arguments(store: Store) -> None:
    stats = await store.execution_stats(now=NOW, bucket_s=300, buckets=12)
    assert stats.counts == ()
    assert dict(stats.durations_ms) == {}
    with pytest.raises(ValueError, match="buckets"):
        await store.execution_stats(now=NOW, bucket_s=0, buckets=12)


async def test_a_day_of_executions_adds_up(store: Store) -> None:
    states = [
        ended(
            n,
            at=NOW - timedelta(minutes=7 * n),
            responder=f"resp-{n % 3}",
            status="failed" if n % 5 == 0 else "completed",
            duration_s=1 + n,
        )
        for n in range(200)  # 7 minutes apart: 206 of them would fill a day
    ]
    await commit_states(store, states, at=NOW)
    stats = await store.execution_stats(now=NOW, bucket_s=3600, buckets=24)
    inside = [s for s in states if s.ended_at is not None and s.ended_at >= NOW - timedelta(days=1)]
    assert sum(c.executions for c in stats.counts) == len(inside) == 200
    assert sum(c.failed for c in stats.counts) == 40
    per_bucket = [0] * 24
    for s in inside:
        assert s.ended_at is not None
        index = int((s.ended_at - (NOW - timedelta(days=1))).total_seconds() // 3600)
        per_bucket[min(index, 23)] += 1
    got = [0] * 24
    for c in stats.counts:
        got[c.bucket] += c.executions
    assert got == per_bucket
    assert sum(sum(h.values()) for h in stats.durations_ms.values()) == 200
