"""The poll loop: fixed-rate schedule, failures kept inside one source, cycle timeouts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.errors import SourceRateLimited, SourceUnauthorized, SourceUnavailable
from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import Poller
from relay.sim import Fault, SimServer, SimWorkspace
from relay.source import ClientConfig, ZaiaClient
from relay.store.sqlite import SqliteStore


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def report(source: str = "prod") -> CycleReport:
    return CycleReport(
        source=source,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        first_poll=False,
        pages=1,
        refreshes=0,
        observed=0,
        stop_reason="caught_up",
        running=3,
        transitions=(),
    )


class ScriptedCycles:
    """Stands in for the engine: each cycle takes a scripted (fake) time, then returns a
    report or raises a scripted error."""

    source = "prod"

    def __init__(self, time: FakeTime, script: list[tuple[float, Exception | None]]) -> None:
        self._time = time
        self._script: Iterator[tuple[float, Exception | None]] = iter(script)
        self.starts: list[float] = []
        self.forgotten = 0

    def forget(self) -> None:
        self.forgotten += 1

    async def run_cycle(self) -> CycleReport:
        self.starts.append(self._time.now)
        duration_s, error = next(self._script)
        self._time.now += duration_s
        if error is not None:
            raise error
        return report()


def poller_for(time: FakeTime, cycles: ScriptedCycles, **kwargs: float) -> Poller:
    return Poller(
        cycles,
        interval_s=10.0,
        cycle_timeout_s=kwargs.get("cycle_timeout_s", 60.0),
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(0),
    )


async def test_cycles_start_on_a_fixed_rate_and_overruns_skip_ticks() -> None:
    time = FakeTime()
    cycles = ScriptedCycles(time, [(0.5, None), (3.0, None), (20.0, None), (1.0, None)])
    await poller_for(time, cycles).run(max_cycles=4)
    offsets = [start - 1000.0 for start in cycles.starts]
    # 0, 10, 20 on schedule; the third overran to 40, so the next is 50 (no burst at 30/40).
    assert offsets == [0.0, 10.0, 20.0, 50.0]


async def test_failures_back_off_and_retry_after_is_obeyed() -> None:
    time = FakeTime()
    cycles = ScriptedCycles(
        time,
        [
            (0.1, SourceUnavailable("prod", "HTTP 503")),
            (0.1, SourceUnavailable("prod", "HTTP 503")),
            (0.1, SourceRateLimited("prod", "HTTP 429", retry_after_s=95.0)),
            (0.1, None),
        ],
    )
    poller = poller_for(time, cycles)
    await poller.run(max_cycles=4)
    gaps = [b - a for a, b in zip(cycles.starts, cycles.starts[1:], strict=False)]
    assert all(gap >= 10.0 for gap in gaps)
    assert gaps[2] >= 95.0, "the API's Retry-After is honoured"
    assert poller.health.consecutive_failures == 0
    assert poller.health.last_error is None


async def test_unauthorized_marks_the_source_and_keeps_polling() -> None:
    time = FakeTime()
    error = SourceUnauthorized("prod", "the API refused the key; check sources.0.api_key")
    cycles = ScriptedCycles(time, [(0.1, error), (0.1, error)])
    poller = poller_for(time, cycles)
    await poller.run(max_cycles=2)
    assert poller.health.unauthorized
    assert poller.health.consecutive_failures == 2
    assert "prod" in (poller.health.last_error or "")


async def test_a_hung_cycle_is_abandoned_at_its_timeout() -> None:
    class Hangs:
        source = "prod"
        calls = 0

        async def run_cycle(self) -> CycleReport:
            self.calls += 1
            if self.calls == 1:
                await asyncio.Event().wait()
            return report()

    outcomes: list[str] = []
    hangs = Hangs()
    poller = Poller(
        hangs,
        interval_s=0.01,
        cycle_timeout_s=0.05,
        on_cycle=lambda _s, outcome, _d, _r: outcomes.append(outcome),
    )
    await poller.run(max_cycles=2)
    assert outcomes == ["timeout", "ok"]


@pytest.fixture
def workspaces() -> tuple[SimWorkspace, SimWorkspace]:
    slow = SimWorkspace(api_key="slow-key", seed=1)
    fine = SimWorkspace(api_key="fine-key", seed=2)
    for workspace in (slow, fine):
        workspace.seed_history(20, running=3)
    # Every list request of the slow source hangs far beyond its cycle timeout.
    slow.inject_fault(Fault("delay", endpoint="list", delay_s=30, times=1000))
    return slow, fine


async def test_one_source_in_trouble_never_stalls_another(
    tmp_path: Path, workspaces: tuple[SimWorkspace, SimWorkspace]
) -> None:
    slow, fine = workspaces
    outcomes: dict[str, list[str]] = {"slow": [], "fine": []}
    async with (
        SimServer(slow) as slow_server,
        SimServer(fine) as fine_server,
        SqliteStore(tmp_path / "state.db") as store,
        ZaiaClient(ClientConfig(name="slow", base_url=slow_server.url, api_key="slow-key")) as c1,
        ZaiaClient(ClientConfig(name="fine", base_url=fine_server.url, api_key="fine-key")) as c2,
    ):
        pollers = [
            Poller(
                SourceEngine(ScanLimits(source=client.config.name), client=client, store=store),
                interval_s=0.05,
                cycle_timeout_s=0.5,
                on_cycle=lambda source, outcome, _d, _r: outcomes[source].append(outcome),
            )
            for client in (c1, c2)
        ]
        async with asyncio.TaskGroup() as group:
            slow_task = group.create_task(pollers[0].run())
            await group.create_task(pollers[1].run(max_cycles=5))
            slow_task.cancel()
    assert outcomes["fine"] == ["ok"] * 5
    assert set(outcomes["slow"]) <= {"timeout"}
    assert pollers[1].health.last_success_at is not None
    assert pollers[0].health.last_success_at is None


async def test_a_replica_on_standby_skips_cycles_and_is_not_stale() -> None:
    time = FakeTime()
    cycles = ScriptedCycles(time, [(0.1, None)])
    leading = iter([False, False, True])
    outcomes: list[str] = []

    async def lead() -> bool:
        return next(leading)

    poller = Poller(
        cycles,
        interval_s=10.0,
        cycle_timeout_s=60.0,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(0),
        lead=lead,
        on_cycle=lambda _s, outcome, _d, _r: outcomes.append(outcome),
    )
    await poller.run(max_cycles=2)
    assert outcomes == ["standby", "standby"]
    assert time.sleeps == [1.0], "a replica on standby asks again within a second"
    assert cycles.starts == [], "another replica polls this source"
    assert cycles.forgotten == 1, "what the engine knew of the store is stale once on standby"
    assert poller.health.standby
    assert not poller.health.is_stale(now=datetime(2030, 1, 1, tzinfo=UTC))
    await poller.run(max_cycles=1)
    assert outcomes[-1] == "ok"
    assert not poller.health.standby
