"""The poll loop of one source: runs engine cycles on a fixed-rate schedule.

Invariants:
- Cycles of one source never overlap: the loop awaits each cycle before scheduling the
  next (see `domain.schedule` for the maths).
- Every cycle is bounded by `cycle_timeout_s`; a cycle cut short commits nothing.
- A source's failures stay in its own loop: they are logged, recorded in its
  `SourceHealth` and backed off, and never raised to the caller, so one source's
  trouble never stalls another. Only cancellation ends the loop.
- With a shared store (PostgreSQL), one replica polls each source at a time: `lead`
  asks the store before each cycle, and a replica on standby skips the cycle and asks
  again within `STANDBY_CHECK_S` (the store answers from what it knows, without a round
  trip), so a source handed over is polled at once whatever its interval.
- 401/403 marks the source unauthorized (unready) with a message naming the source;
  the loop keeps trying at a slow pace so a rotated key is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

from relay.clock import utcnow
from relay.domain.schedule import next_start
from relay.errors import SourceError, SourceUnauthorized, StoreError
from relay.pipeline.cycle import CycleReport
from relay.vocab import CycleOutcome

log = structlog.get_logger("relay.pipeline.poller")

STANDBY_CHECK_S = 1.0

OnCycle = Callable[[str, CycleOutcome, float, CycleReport | None], None]


@dataclass
class SourceHealth:
    """What readiness and the status page need to know about one source."""

    source: str
    interval_s: float
    last_success_at: datetime | None = None
    last_attempt_at: datetime | None = None
    last_error: str | None = None
    unauthorized: bool = False
    consecutive_failures: int = 0
    running: int = 0
    # Another replica polls this source (it holds the source's lock in the store).
    standby: bool = False
    # How it polls, and (adaptive) what it spends and how far behind it is.
    mode: str = "fixed"
    budget_per_minute: float | None = None
    rate_per_minute: float | None = None
    staleness_s: float = 0.0
    over_budget: bool = False
    # How the last cycle went, and the report of the last successful one.
    last_outcome: CycleOutcome | None = None
    last_report: CycleReport | None = None

    def is_stale(self, *, now: datetime, intervals: int = 3) -> bool:
        """No successful poll within `intervals` poll intervals (never, on standby)."""
        if self.standby:
            return False
        if self.last_success_at is None:
            return True
        return (now - self.last_success_at).total_seconds() > intervals * self.interval_s


@dataclass(frozen=True, slots=True)
class Timing:
    """The clocks, sleep and randomness a poll loop runs on (injected by tests)."""

    clock: Callable[[], float]
    wall_clock: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    rng: random.Random


class SourceLoop(Protocol):
    """What the daemon runs per source: a `Poller` (fixed) or an `AdaptivePoller`."""

    @property
    def health(self) -> SourceHealth: ...

    async def run(self) -> None: ...


class CycleRunner(Protocol):
    """What the poller drives: `SourceEngine`, or a scripted stand-in in tests."""

    @property
    def source(self) -> str: ...

    async def run_cycle(self) -> CycleReport: ...

    def forget(self) -> None:
        """Drop what it knows of the store (another replica polls now)."""


class Poller:
    def __init__(
        self,
        engine: CycleRunner,
        *,
        interval_s: float,
        cycle_timeout_s: float,
        max_backoff_s: float = 300.0,
        on_cycle: OnCycle | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        lead: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._cycle_timeout_s = cycle_timeout_s
        self._max_backoff_s = max_backoff_s
        self._on_cycle = on_cycle
        self.timing = Timing(clock, wall_clock, sleep, rng or random.Random())
        self._lead = lead
        self.health = SourceHealth(source=engine.source, interval_s=interval_s)
        # Held through each cycle: a reload takes it before stopping this poller, so a
        # cycle is never cut short by a reload (it only ever stops between cycles).
        self.cycling = asyncio.Lock()

    async def run(self, *, max_cycles: int | None = None) -> None:
        """Poll until cancelled (or for `max_cycles` cycles, for tests and benches)."""
        tick = self.timing.clock()
        cycles = 0
        while max_cycles is None or cycles < max_cycles:
            retry_after_s = await self.run_one()
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                return
            start = next_start(
                previous_tick=tick,
                interval_s=self._interval_s,
                now=self.timing.clock(),
                consecutive_failures=self.health.consecutive_failures,
                retry_after_s=retry_after_s,
                max_delay_s=self._max_backoff_s,
                rng=self.timing.rng,
            )
            if self.health.standby:
                start = min(start, self.timing.clock() + STANDBY_CHECK_S)
            tick = start
            await self.timing.sleep(max(0.0, start - self.timing.clock()))

    async def run_one(
        self, cycle: Callable[[], Awaitable[CycleReport]] | None = None
    ) -> float | None:
        """One guarded cycle (the engine's whole cycle unless `cycle` says otherwise);
        returns a `Retry-After` to honour, if the API sent one to a cycle that failed
        (already bounded by `max_retry_after`); a successful cycle runs the next on time."""
        async with self.cycling:
            return await self._run_one(cycle)

    async def _run_one(self, cycle: Callable[[], Awaitable[CycleReport]] | None) -> float | None:
        source = self._engine.source
        run = cycle if cycle is not None else self._engine.run_cycle
        began = self.timing.clock()
        if self._lead is not None and not await self._leads():
            self.health.last_outcome = "standby"
            if self._on_cycle is not None:
                self._on_cycle(source, "standby", 0.0, None)
            return None
        self.health.last_attempt_at = self.timing.wall_clock()
        report: CycleReport | None = None
        retry_after_s: float | None = None
        outcome: CycleOutcome
        try:
            async with asyncio.timeout(self._cycle_timeout_s):
                report = await run()
        except SourceUnauthorized as exc:
            outcome = "unauthorized"
            self._failed(str(exc), unauthorized=True)
            log.error("poll.unauthorized", source=source, error=str(exc))
        except SourceError as exc:
            outcome = "source_error"
            retry_after_s = getattr(exc, "retry_after_s", None)
            self._failed(str(exc))
            log.warning(
                "poll.failed",
                source=source,
                error=str(exc),
                consecutive_failures=self.health.consecutive_failures,
                hint="the relay retries with backoff; check the API's status if this persists",
            )
        except StoreError as exc:
            outcome = "store_error"
            self._failed(str(exc))
            log.error("poll.store_failed", source=source, error=str(exc))
        except TimeoutError:
            outcome = "timeout"
            self._failed(f"cycle took longer than {self._cycle_timeout_s:g}s and was abandoned")
            log.warning(
                "poll.timeout",
                source=source,
                timeout_s=self._cycle_timeout_s,
                hint="raise sources[].cycle_timeout or lower max_pages",
            )
        else:
            outcome = "ok"
            self._succeeded(report)
        duration_s = self.timing.clock() - began
        self.health.last_outcome = outcome
        if self._on_cycle is not None:
            self._on_cycle(source, outcome, duration_s, report)
        return retry_after_s

    async def _leads(self) -> bool:
        """Whether this replica polls the source now; a store that cannot say counts as
        a failed cycle (the next one asks again)."""
        assert self._lead is not None
        try:
            leading = await self._lead()
        except StoreError as exc:
            self._failed(str(exc))
            log.error("poll.lead_failed", source=self._engine.source, error=str(exc))
            self._engine.forget()  # the lock may have gone to another replica meanwhile
            return False
        if leading != (not self.health.standby):
            log.info("poll.leader" if leading else "poll.standby", source=self._engine.source)
            if not leading:
                self._engine.forget()  # the leader's polls make what this one knew stale
        self.health.standby = not leading
        return leading

    def _failed(self, message: str, *, unauthorized: bool = False) -> None:
        self.health.consecutive_failures += 1
        self.health.last_error = message
        self.health.unauthorized = unauthorized

    def _succeeded(self, report: CycleReport | None) -> None:
        self.health.consecutive_failures = 0
        self.health.last_error = None
        self.health.unauthorized = False
        self.health.last_success_at = self.timing.wall_clock()
        self.health.last_report = report
        if report is None:
            return
        self.health.running = report.running
        for transition in report.transitions:
            if transition.kind == "status" and transition.alertable:
                log.info(
                    "execution.transition",
                    source=transition.source,
                    execution_id=transition.execution_id,
                    from_status=transition.from_status,
                    to_status=transition.to_status,
                    type=transition.execution.kind,
                    credits_used=transition.credits_after,
                )
        log.info("poll.done", **_done_fields(report))
        for problem in report.problems:
            log.warning(
                "poll.invalid_item",
                source=report.source,
                index=problem.index,
                execution_id=problem.execution_id,
                problem=problem.message,
            )


def _done_fields(report: CycleReport) -> dict[str, object]:
    """The counts of one cycle, for the `poll.done` line."""
    fields: dict[str, object] = {
        name: getattr(report, name)
        for name in ("source", "pages", "refreshes", "observed", "running", "first_poll")
    }
    fields["transitions"] = len(report.transitions)
    fields["alertable"] = len(report.alertable)
    fields["invalid_items"] = len(report.problems)
    fields["stop"] = report.stop_reason
    return fields
