"""Several replicas on one PostgreSQL store: one polls each source at a time, the
sources are shared out among them, and when one dies or freezes (SIGSTOP: no FIN, its
connections stay open) the others take its sources within seconds; every transition is
still produced, and alerted, once."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from relay.sim import SimServer, SimWorkspace
from tests.delivery_kit import Receiver
from tests.relay_process import RelayProcess, alert_failures_to
from tests.test_store_postgres import pg_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

KEY = "replica-test-key"


def write_config(
    tmp_path: Path,
    *,
    name: str,
    source: str | Sequence[str],
    sim_url: str,
    store_url: str,
    hook_url: str | None = None,
) -> Path:
    names = [source] if isinstance(source, str) else list(source)
    sources = "".join(
        f"""
  - name: {n}
    base_url: {sim_url}
    api_key: {KEY}
    poll_interval: 200ms
    request_budget: 600/m"""
        for n in names
    )
    alerting = f"""
{alert_failures_to(hook_url)}"""
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""
sources:{sources}
store:
  url: "{store_url}"
server:
  listen: 127.0.0.1:0
log:
  format: json
{alerting if hook_url else ""}"""
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


def leads(run: RelayProcess) -> set[str]:
    """The sources a replica leads, as its store last logged them."""
    led: set[str] = set()
    for event in run.events:
        if event.get("event") == "store.leading":
            led.add(event["source"])
        elif event.get("event") == "store.not_leading":
            led.discard(event["source"])
    return led


def alerted(hook: Receiver) -> Counter[tuple[str, str]]:
    """Webhook messages per (source, execution), each `webhook-id` counted once."""
    seen: dict[str, tuple[str, str]] = {}
    for request in hook.requests:
        body = request.json()
        seen[request.headers["webhook-id"]] = (body["alert"]["source"], body["execution"]["id"])
    return Counter(seen.values())


async def test_a_frozen_replica_loses_its_sources_within_15s_and_all_alert_once(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
) -> None:
    sources = ("east", "west")  # leases live in the test's own schema
    workspace = SimWorkspace(api_key=KEY, seed=22)
    running = [workspace.create_execution() for _ in range(3)]
    async with SimServer(workspace) as sim, Receiver() as hook:
        configs = [
            write_config(
                tmp_path,
                name=n,
                source=sources,
                sim_url=sim.url,
                store_url=pg_url,
                hook_url=f"{hook.url}/hook",
            )
            for n in ("a", "b")
        ]
        a = await RelayProcess.start(["run", "-c", str(configs[0])])
        runs = [a]
        try:
            await a.wait_until(lambda: leads(a) == set(sources), what="alone, a leads both")
            b = await RelayProcess.start(["run", "-c", str(configs[1])])
            runs.append(b)
            await b.wait_until(lambda: len(leads(b)) == 1, what="b takes its share")
            await a.wait_until(lambda: leads(a) == set(sources) - leads(b), what="a lets go")

            async def alerts_for(execution: str) -> None:
                wanted = {(s, execution) for s in sources}
                await a.wait_until(lambda: wanted <= set(alerted(hook)), what="alerts")

            (frozen,) = leads(b)
            b.freeze()
            frozen_at = time.monotonic()
            workspace.set_status(running[0], "failed")
            await a.wait_until(lambda: leads(a) == set(sources), timeout_s=15, what="takeover")
            assert time.monotonic() - frozen_at < 15
            await alerts_for(running[0])

            taken_before = len(b.named("store.leading"))
            b.thaw()  # it finds it leads nothing, then takes a share again
            workspace.set_status(running[1], "failed")
            await alerts_for(running[1])
            await b.wait_until(
                lambda: len(b.named("store.leading")) > taken_before and len(leads(b)) == 1,
                what="b takes a share again",
            )
            workspace.set_status(running[2], "failed")
            await alerts_for(running[2])
            assert frozen in {e["source"] for e in b.named("store.not_leading")}
            assert [await run.stop() for run in runs] == [0, 0]
        finally:
            for run in runs:
                await run.close()
    assert alerted(hook) == Counter({(s, e): 1 for s in sources for e in running})
    assert len(hook.requests) == len(sources) * len(running), "each message sent once"
    assert logged(runs) == Counter({(e, "failed"): len(sources) for e in running})
