"""Exactly once across restarts: the relay as a real subprocess against the simulator.

The relay is stopped cleanly, killed with SIGKILL between cycles and in the middle of
one, and statuses change while it is down. Every transition must be logged once in all
(the relay logs `execution.transition` only after the cycle that found it committed)
and stored once, and nothing else may alert.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from relay.sim import Fault, SimServer, SimWorkspace
from relay.sim.faults import Endpoint
from relay.store.sqlite import SqliteStore
from tests.relay_process import RelayProcess

pytestmark = pytest.mark.slow

KEY = "restart-test-key"


def write_config(tmp_path: Path, base_url: str, *, polling: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(
        f"""
sources:
  - name: prod
    base_url: {base_url}
    api_key: ${{ZAIA_API_KEY}}
    poll_interval: 300ms
    polling: {polling}
    # Room for a dozen reads per poll_interval: the adaptive top, the sweep and the reads
    # by id all fit, so each step is found within a few reads.
    request_budget: 2400/m
    page_size: 4
    max_pages: 20
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: 127.0.0.1:0
log:
  format: json
"""
    )
    return path


class HoldingWorkspace(SimWorkspace):
    """Sets `fault_taken` when a request takes a fault: a relay whose request is held up
    logs nothing, so only the simulator can tell the test it is in flight."""

    def __init__(self, *, api_key: str, seed: int) -> None:
        super().__init__(api_key=api_key, seed=seed)
        self.fault_taken = asyncio.Event()

    def take_fault(self, endpoint: Endpoint) -> Fault | None:
        fault = super().take_fault(endpoint)
        if fault is not None:
            self.fault_taken.set()
        return fault


class Scenario:
    """Moves executions in the simulator and remembers which transitions that implies."""

    def __init__(self, workspace: SimWorkspace) -> None:
        self.workspace = workspace
        self.expected: set[tuple[str, str, str]] = set()

    def move(self, execution_id: str, status: str) -> None:
        before = self.workspace.status_of(execution_id)
        self.workspace.set_status(
            execution_id, status, error="step failed" if status == "failed" else None
        )
        self.expected.add((execution_id, before, status))

    def create(self, status: str = "running") -> str:
        execution_id = self.workspace.create_execution(status=status)
        self.expected.add((execution_id, "unknown", status))
        return execution_id


def logged(runs: list[RelayProcess]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (e["execution_id"], e["from_status"], e["to_status"])
        for run in runs
        for e in run.named("execution.transition")
    )


@pytest.mark.parametrize("polling", ["fixed", "adaptive"])
async def test_every_transition_once_across_stops_kills_and_downtime(
    tmp_path: Path, polling: str
) -> None:
    workspace = HoldingWorkspace(api_key=KEY, seed=5)
    running = [workspace.create_execution() for _ in range(8)]
    for status in ("completed", "failed", "cancelled"):
        workspace.create_execution(status=status)
    scenario = Scenario(workspace)
    runs: list[RelayProcess] = []

    async def start() -> RelayProcess:
        run = await RelayProcess.start(["run", "-c", str(config)], env={"ZAIA_API_KEY": KEY})
        runs.append(run)
        return run

    async def caught_up(run: RelayProcess) -> None:
        await run.wait_until(
            lambda: set(logged(runs)) >= scenario.expected,
            what=f"transitions {sorted(scenario.expected - set(logged(runs)))}",
        )

    async with SimServer(workspace) as sim:
        config = write_config(tmp_path, sim.url, polling=polling)
        try:
            # 1. A first start records a baseline and alerts on nothing in it.
            relay = await start()
            await relay.wait_for_event("poll.done", count=2)
            if polling == "adaptive":
                # The first start reads the top, then sweeps the rest of the list over
                # the next reads: the running executions are tracked once it is done.
                await relay.wait_for_event("poll.sweep_done")
            assert relay.named("execution.transition") == []

            # 2. Changes while it runs, then a clean stop.
            scenario.move(running[0], "failed")
            born_failed = scenario.create("failed")
            fresh = scenario.create()
            await caught_up(relay)
            assert await relay.stop() == 0
            assert relay.named("relay.stopped")

            # 3. Changes while it is down: found after the restart.
            scenario.move(running[1], "completed")
            scenario.move(fresh, "cancelled")
            scenario.create("failed")
            relay = await start()
            await caught_up(relay)

            # 4. kill -9 right after a committed cycle, with changes pending.
            polls = len(relay.named("poll.done"))
            await relay.wait_for_event("poll.done", count=polls + 1)
            await relay.kill()
            scenario.move(running[2], "failed")
            scenario.move(running[3], "cancelled")
            relay = await start()
            await caught_up(relay)

            # 5. kill -9 in the middle of a cycle: a list request is held up, changes land
            #    meanwhile, and the cycle that was reading dies without committing.
            workspace.inject_fault(Fault("delay", endpoint="list", delay_s=30))
            async with asyncio.timeout(20):
                await workspace.fault_taken.wait()
            scenario.move(running[4], "failed")
            scenario.create("cancelled")
            await relay.kill()
            workspace.clear_faults()
            relay = await start()
            await caught_up(relay)
            assert await relay.stop() == 0
        finally:
            for run in runs:
                await run.close()

    counts = logged(runs)
    assert set(counts) == scenario.expected, "no transition missed, none invented"
    assert all(n == 1 for n in counts.values()), f"logged more than once: {counts}"
    assert (born_failed, "unknown", "failed") in counts

    async with SqliteStore(tmp_path / "state.db") as store:
        stored = await store.recent_transitions(source="prod", limit=10_000)
    alertable = [(t.execution_id, t.from_status, t.to_status) for t in stored if t.alertable]
    assert sorted(alertable) == sorted(scenario.expected)
