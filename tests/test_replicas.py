"""Several replicas on one PostgreSQL store: one polls each source at a time, and when
it dies another takes over within seconds; every transition is still produced once."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import pytest

from relay.sim import SimServer, SimWorkspace
from tests.relay_process import RelayProcess
from tests.test_store_postgres import pg_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

KEY = "replica-test-key"


def write_config(tmp_path: Path, *, name: str, source: str, sim_url: str, store_url: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""
sources:
  - name: {source}
    base_url: {sim_url}
    api_key: {KEY}
    poll_interval: 200ms
    request_budget: 600/m
store:
  url: "{store_url}"
server:
  listen: 127.0.0.1:0
log:
  format: json
"""
    )
    return path


def logged(runs: list[RelayProcess]) -> Counter[tuple[str, str]]:
    return Counter(
        (e["execution_id"], e["to_status"]) for r in runs for e in r.named("execution.transition")
    )


async def test_one_replica_polls_and_another_takes_over_when_it_dies(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    source = f"prod-{uuid.uuid4().hex[:8]}"  # advisory locks are per database
    workspace = SimWorkspace(api_key=KEY, seed=21)
    running = [workspace.create_execution() for _ in range(4)]
    async with SimServer(workspace) as sim:
        configs = [
            write_config(tmp_path, name=n, source=source, sim_url=sim.url, store_url=pg_url)
            for n in ("a", "b")
        ]
        first = await RelayProcess.start(["run", "-c", str(configs[0])])
        runs = [first]
        second: RelayProcess | None = None
        try:
            await first.wait_for_event("poll.done", count=2)
            second = await RelayProcess.start(["run", "-c", str(configs[1])])
            runs.append(second)
            await second.wait_for_event("poll.standby")

            workspace.set_status(running[0], "failed")
            await first.wait_until(
                lambda: logged(runs)[(running[0], "failed")] == 1, what="the leader alerts"
            )
            assert second.named("poll.done") == [], "the standby replica never polls"

            await first.kill()
            await second.wait_for_event("poll.leader", timeout_s=30)
            workspace.set_status(running[1], "cancelled")
            await second.wait_until(
                lambda: logged(runs)[(running[1], "cancelled")] == 1, what="the new leader alerts"
            )
            assert await second.stop() == 0
        finally:
            for run in runs:
                await run.close()
    assert all(count == 1 for count in logged(runs).values()), logged(runs)
