"""Execution statistics of the status page, from the store's bucketed counts: totals,
failure ratios and per-bucket series for each (source, responder) and each source.

Invariants:
- Pure: no I/O, no clock; the store computes counts and percentiles in SQL
  (`relay.store.sql_stats`), this module only adds them up and orders them.
- Every series has exactly `buckets` values, oldest first, zeros where nothing ended:
  a chart's bars line up with time whatever was stored.
- The failure ratio is failed / executions that ended (None when none ended), as the
  windowed rules count it over what ended in their window.
- p95 is read off a histogram of durations (`histogram_rank`: milliseconds truncated to
  two significant digits, so a bin is at most 10% wide), interpolated within the bin
  that holds the nearest rank: it lies in the same bin as the exact `nearest_rank`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "BucketCount",
    "StatsRow",
    "bin_width_ms",
    "failure_ratio",
    "histogram_rank",
    "ms_bin",
    "nearest_rank",
    "stats_rows",
]


@dataclass(frozen=True, slots=True)
class BucketCount:
    """What one responder of one source ended in one bucket (0: the oldest)."""

    source: str
    responder_id: str
    bucket: int
    executions: int
    failed: int
    credits: float


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One line of the statistics table: a responder of a source, or the whole source
    (`responder_id` None), over one window."""

    source: str
    responder_id: str | None
    responder: str | None  # its configured name, else its id; None for a source total
    executions: int
    failed: int
    credits: float
    p95_s: float | None
    executions_series: tuple[int, ...]
    failed_series: tuple[int, ...]

    @property
    def ratio(self) -> float | None:
        return failure_ratio(failed=self.failed, executions=self.executions)


def failure_ratio(*, failed: int, executions: int) -> float | None:
    return None if executions <= 0 else failed / executions


def nearest_rank(values: Sequence[float], *, quantile: float = 0.95) -> float | None:
    """The smallest value that at least `quantile` of `values` do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(round(quantile * len(ordered), 9)))
    return ordered[rank - 1]


def ms_bin(ms: int) -> int:
    """The bin of a duration in whole milliseconds: truncated to two significant digits
    (what the store's SQL computes as text)."""
    text = str(max(ms, 0))
    return int(text[:2] + "0" * (len(text) - 2)) if len(text) > 2 else int(text)


def bin_width_ms(lower_ms: int) -> int:
    """How wide the bin starting at `lower_ms` is: 1 ms below 100 ms, else the unit of
    its second significant digit."""
    return 1 if lower_ms < 100 else 10 ** (len(str(lower_ms)) - 2)


def histogram_rank(histogram: Mapping[int, int], *, quantile: float = 0.95) -> float | None:
    """The `quantile` of the durations a histogram counts, in seconds: the bin that
    holds the nearest rank, interpolated linearly by the rank's place in it."""
    total = sum(n for n in histogram.values() if n > 0)
    if total == 0:
        return None
    rank = max(1, math.ceil(round(quantile * total, 9)))
    seen = 0
    for lower in sorted(histogram):
        count = histogram[lower]
        if count <= 0:
            continue
        if seen + count >= rank:
            within = (rank - seen) / count
            return (lower + bin_width_ms(lower) * within) / 1000
        seen += count
    raise AssertionError("unreachable: the ranks add up to the total")


def stats_rows(
    counts: Iterable[BucketCount],
    *,
    buckets: int,
    durations_ms: Mapping[tuple[str, str], Mapping[int, int]],
    names: Mapping[str, str],
    sources: Sequence[str] = (),
) -> list[StatsRow]:
    """Per source (in `sources` order, then the others by name): its total row, then
    its responders by executions (most first), then by name. `names` maps responder
    ids to configured names; `durations_ms` holds each responder's histogram of
    durations (`ms_bin` -> count), a source's being the sum of its responders'."""
    histograms: dict[tuple[str, str | None], dict[int, int]] = {}
    for (source, responder_id), histogram in durations_ms.items():
        for key in ((source, responder_id), (source, None)):
            merged = histograms.setdefault(key, {})
            for lower, n in histogram.items():
                merged[lower] = merged.get(lower, 0) + n
    series: dict[tuple[str, str | None], tuple[list[int], list[int], list[float]]] = {}
    for count in counts:
        index = min(max(count.bucket, 0), buckets - 1)
        for key in ((count.source, count.responder_id), (count.source, None)):
            runs, fails, credits = series.setdefault(key, ([0] * buckets, [0] * buckets, [0.0]))
            runs[index] += count.executions
            fails[index] += count.failed
            credits[0] += count.credits
    rank = {name: n for n, name in enumerate(sources)}
    present = sorted({source for source, _ in series}, key=lambda s: (rank.get(s, len(rank)), s))
    rows: list[StatsRow] = []
    for source in present:
        responders = [r for s, r in series if s == source and r is not None]
        responders.sort(key=lambda r: (-sum(series[(source, r)][0]), names.get(r, r), r))
        for responder in [None, *responders]:
            runs, fails, credits = series[(source, responder)]
            rows.append(
                StatsRow(
                    source=source,
                    responder_id=responder,
                    responder=None if responder is None else names.get(responder) or responder,
                    executions=sum(runs),
                    failed=sum(fails),
                    credits=credits[0],
                    p95_s=histogram_rank(histograms.get((source, responder), {})),
                    executions_series=tuple(runs),
                    failed_series=tuple(fails),
                )
            )
    return rows
