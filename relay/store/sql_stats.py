"""Execution statistics of the status page, computed in SQL on both backends: counts,
failures and credits per (source, responder, time bucket), and a histogram of
durations per (source, responder).

Invariants:
- One statement per window (an hour, a day), read in one snapshot: the buckets and the
  percentiles describe the same rows.
- An execution belongs to the bucket its `ended_at` falls in: bucket i holds what ended
  in [since + i*width, since + (i+1)*width), in exact integer microseconds on both
  backends (`Dialect.epoch_us`). What ended after the last bucket (a source clock a
  little ahead) counts in the last one; running executions (no end) count nowhere.
- Durations come as a histogram (whole milliseconds truncated to two significant
  digits, so a bin is at most 10% wide), not as rows: an exact percentile needs a sort of every
  row (window functions), which took SQLite over half a second for a day of 100,000
  executions; the histogram is one more GROUP BY. `relay.domain.exec_stats` reads the
  percentile off it, within its bin of the exact nearest rank.
- The statement reads only columns of the covering index `executions_stats`, once:
  the rows of the window are materialized (`AS MATERIALIZED`: SQLite 3.35+,
  PostgreSQL 12+), so each row's bucket and duration are computed once, not once per
  use.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from relay.domain.exec_stats import BucketCount
from relay.store.backend import Backend, Dialect
from relay.store.records import ExecutionStats

_US = 1_000_000


# Durations are counted in bins: whole milliseconds truncated to two significant
# digits (1234 -> 1200, 87 -> 87), so a bin is at most 10% wide; integer arithmetic,
# alike in both dialects. The percentile is read off that histogram.
_UNIT = (
    "CASE WHEN ms < 100 THEN 1 WHEN ms < 1000 THEN 10 WHEN ms < 10000 THEN 100 "
    "WHEN ms < 100000 THEN 1000 WHEN ms < 1000000 THEN 10000 "
    "WHEN ms < 10000000 THEN 100000 WHEN ms < 100000000 THEN 1000000 ELSE 10000000 END"
)
_MS_BIN = f"ms - ms % ({_UNIT})"


@functools.cache
def stats_statement(dialect: Dialect) -> str:
    ended, started = dialect.epoch_us("ended_at"), dialect.epoch_us("started_at")
    return f"""
WITH ended AS MATERIALIZED (
    SELECT source, responder_id, status, credits_used,
           ({ended} - :since_us) / :width_us AS bucket,
           CASE WHEN ended_at > started_at THEN ({ended} - {started}) / 1000 ELSE 0 END AS ms
    FROM executions WHERE ended_at >= :since
)
SELECT source, responder_id, bucket, count(*) AS executions,
       sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
       sum(credits_used) AS credits, CAST(NULL AS BIGINT) AS ms_bin
FROM ended GROUP BY source, responder_id, bucket
UNION ALL
SELECT source, responder_id, NULL, count(*), NULL, NULL, {_MS_BIN}
FROM ended GROUP BY source, responder_id, {_MS_BIN}
"""


class SqlStats(Backend):
    """`Store.execution_stats` (see `relay.store.base.Store` for the contract)."""

    async def execution_stats(
        self, *, now: datetime, bucket_s: int, buckets: int
    ) -> ExecutionStats:
        if bucket_s <= 0 or buckets <= 0:
            raise ValueError("execution_stats needs buckets > 0 of bucket_s > 0")
        since = now - timedelta(seconds=bucket_s * buckets)
        since_us = round(since.timestamp() * _US)
        params = {
            "since": self.dialect.encode_time(since),
            "since_us": since_us,
            "width_us": bucket_s * _US,
        }
        async with self._reading("read execution statistics", snapshot=True) as session:
            rows = await session.fetch(stats_statement(self.dialect), **params)
        merged: dict[tuple[str, str, int], BucketCount] = {}
        durations: dict[tuple[str, str], dict[int, int]] = {}
        for row in rows:
            key = (row["source"], row["responder_id"])
            if row["bucket"] is None:
                histogram = durations.setdefault(key, {})
                ms = int(row["ms_bin"])
                histogram[ms] = histogram.get(ms, 0) + int(row["executions"])
                continue
            bucket = min(int(row["bucket"]), buckets - 1)
            before = merged.get((*key, bucket))
            merged[(*key, bucket)] = BucketCount(
                source=key[0],
                responder_id=key[1],
                bucket=bucket,
                executions=int(row["executions"]) + (before.executions if before else 0),
                failed=int(row["failed"]) + (before.failed if before else 0),
                credits=float(row["credits"]) + (before.credits if before else 0.0),
            )
        counts = tuple(merged[key] for key in sorted(merged))
        return ExecutionStats(
            since=since, bucket_s=bucket_s, buckets=buckets, counts=counts, durations_ms=durations
        )
