"""The execution statistics of the status page, read from the store: the last hour in
five-minute buckets and the last day in hourly ones.

Invariants:
- Reading only. A store that fails or does not answer within the context's timeout
  marks the window unknown (`StatsWindow.problem`); the rest of the page still renders.
- The last day is read at most once every `DAY_REFRESH_S` (by the context's clock) and
  kept in between; once that old, the kept figures are still shown while one read in
  the background replaces them (stale while revalidating), so only the first render
  waits for it: a day of 100,000 executions costs SQLite a few hundred milliseconds,
  while its hourly bars barely move within a minute. The last hour is read on every
  render. The page says how old the day's figures are.
- Responders are shown by their configured name (`responders:`), else by their id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import structlog
from aiohttp import web

from relay.domain.exec_stats import stats_rows
from relay.durations import format_age_s
from relay.errors import StoreError
from relay.http.common import HttpContext
from relay.http.stats_view import StatsWindow, bucket_labels
from relay.store import ExecutionStats

__all__ = [
    "DAY_REFRESH_S",
    "STATS_CACHE",
    "WINDOWS",
    "StatsCache",
    "gather_stats",
    "unknown_windows",
]

log = structlog.get_logger("relay.http.status")

DAY_REFRESH_S = 60.0


@dataclass(frozen=True, slots=True)
class WindowSpec:
    key: str
    title: str
    bucket_s: int
    buckets: int
    refresh_s: float  # 0: read on every render


WINDOWS = (
    WindowSpec("hour", "Last hour (5-minute bars)", bucket_s=300, buckets=12, refresh_s=0.0),
    WindowSpec("day", "Last day (hourly bars)", bucket_s=3600, buckets=24, refresh_s=DAY_REFRESH_S),
)


class StatsCache:
    """The last read of each window that is not read on every render, and the last
    background read that refreshed it (done, or still running)."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[datetime, ExecutionStats]] = {}
        self.refreshing: dict[str, asyncio.Task[None]] = {}

    async def close(self, _app: object = None) -> None:
        """Stop refreshes still running (the app shuts down)."""
        tasks = list(self.refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


STATS_CACHE = web.AppKey("stats_cache", StatsCache)


async def _query(context: HttpContext, spec: WindowSpec, *, now: datetime) -> ExecutionStats:
    async with asyncio.timeout(context.store_timeout_s):
        return await context.store.execution_stats(
            now=now, bucket_s=spec.bucket_s, buckets=spec.buckets
        )


async def _refresh(context: HttpContext, spec: WindowSpec, cache: StatsCache) -> None:
    now = context.now()
    try:
        cache.kept[spec.key] = (now, await _query(context, spec, now=now))
    except (StoreError, TimeoutError) as exc:
        # The kept figures stay (the page says how old they are); the next render retries.
        log.warning("status.stats_failed", window=spec.key, error=str(exc) or "timed out")


async def _read(
    context: HttpContext, spec: WindowSpec, cache: StatsCache, *, now: datetime
) -> tuple[ExecutionStats, datetime]:
    """The window's figures and when they were read. Kept ones older than the window's
    `refresh_s` are still served, while one read in the background replaces them:
    only the first render waits for a day of executions."""
    kept = cache.kept.get(spec.key)
    if spec.refresh_s <= 0 or kept is None:
        stats = await _query(context, spec, now=now)
        if spec.refresh_s > 0:
            cache.kept[spec.key] = (now, stats)
        return stats, now
    read_at, stats = kept
    stale = not 0 <= (now - read_at).total_seconds() < spec.refresh_s
    running = cache.refreshing.get(spec.key)
    if stale and (running is None or running.done()):
        cache.refreshing[spec.key] = asyncio.create_task(_refresh(context, spec, cache))
    return stats, read_at


def unknown_windows(problem: str) -> list[StatsWindow]:
    """Every window marked unknown, for a store already known not to answer."""
    return [StatsWindow(s.key, s.title, rows=(), labels=(), problem=problem) for s in WINDOWS]


async def gather_stats(context: HttpContext, cache: StatsCache) -> list[StatsWindow]:
    now = context.now()
    names = context.settings.responders
    sources = [s.name for s in context.settings.sources]
    windows: list[StatsWindow] = []
    for spec in WINDOWS:
        try:
            stats, read_at = await _read(context, spec, cache, now=now)
        except (StoreError, TimeoutError) as exc:
            problem = f"execution statistics are unknown: {exc or 'the store timed out'}"
            windows.extend(w for w in unknown_windows(problem) if w.key == spec.key)
            continue
        rows = stats_rows(
            stats.counts,
            buckets=stats.buckets,
            durations_ms=stats.durations_ms,
            names=names,
            sources=sources,
        )
        age_s = (now - read_at).total_seconds()
        notes = [f"read {format_age_s(age_s)} ago"] if age_s >= 1 else []
        labels = bucket_labels(stats.since, bucket_s=stats.bucket_s, buckets=stats.buckets)
        windows.append(StatsWindow(spec.key, spec.title, rows=rows, labels=labels, notes=notes))
    return windows
