"""Alertmanager HA end to end: the simulator over loopback, the relay's own runtime
(planner, store, delivery pool, metrics, HTTP) on an injected clock, and two REAL
Alertmanagers, the second not up when the alert fires. Both end up showing it; the
first never waits for the second."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from relay.app import Runtime, build_runtime
from relay.pipeline import Poller
from relay.settings.loader import parse_settings
from relay.sim import ManualClock, SimServer, SimWorkspace
from tests.alertmanager_kit import Alertmanager

KEY = "am-ha-e2e-key"
ADMIN = "am-ha-admin-token-1"


def config(tmp_path: Path, *, sim_url: str, urls: list[str]) -> str:
    listed = ", ".join(urls)
    return f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: {KEY}
    polling: fixed
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: 127.0.0.1:0
  admin_token: {ADMIN}
log:
  format: json
rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
sinks:
  am:
    type: alertmanager
    urls: [{listed}]
    retry_initial: 1s
    retry_max: 2s
    max_age: 1m
    timeout: 5s
routes:
  - name: everything
    sinks: [am]
"""


@dataclass
class Rig:
    clock: ManualClock
    workspace: SimWorkspace
    runtime: Runtime

    async def cycle(self) -> None:
        self.clock.advance(seconds=15)
        for poller in self.runtime.pollers:
            assert isinstance(poller, Poller)
            await poller.run_one()

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.runtime.http.url}{path}")
        assert response.status_code == 200, response.text
        return response


def target(instance: Alertmanager) -> str:
    """The delivery target of one instance: named by its host and port."""
    return f"am[127.0.0.1:{instance.port}]"


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    with Alertmanager(tmp_path) as first, Alertmanager(tmp_path) as second:
        yield first.start(), second  # the second is not started yet


@pytest.fixture
async def rig(tmp_path: Path, instances: tuple[Alertmanager, Alertmanager]) -> AsyncIterator[Rig]:
    # Alertmanager keeps its own time: the relay's clock starts at the real now.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    workspace = SimWorkspace(api_key=KEY, seed=5, now=clock)
    async with SimServer(workspace) as server:
        text = config(tmp_path, sim_url=server.url, urls=[i.url for i in instances])
        async with build_runtime(parse_settings(text, environ={}), now=clock) as runtime:
            await runtime.http.start()
            try:
                yield Rig(clock, workspace, runtime)
            finally:
                await runtime.http.stop()


async def test_both_instances_show_the_alert_and_the_down_one_delays_nothing(
    rig: Rig, instances: tuple[Alertmanager, Alertmanager]
) -> None:
    first, second = instances
    t0, t1 = target(first), target(second)
    workers = rig.runtime.deliveries.workers
    assert sorted(workers) == sorted([t0, t1])
    execution = rig.workspace.create_execution(kind="agent")
    await rig.cycle()  # baseline
    rig.workspace.set_status(execution, "failed", error="card declined")
    await rig.cycle()

    assert (await workers[t1].step()).outcomes == {"retry": 1}
    assert (await workers[t0].step()).outcomes == {"delivered": 1}
    [shown] = first.alerts()
    assert shown["labels"]["alertname"] == "execution-failed"
    assert shown["annotations"]["execution_id"] == execution

    [alert] = (await rig.get("/api/v1/alerts")).json()["alerts"]
    by_target = {d["sink"]: d for d in alert["deliveries"]}
    assert by_target[t0]["status"] == "delivered"
    assert by_target[t1]["status"] == "pending"
    assert by_target[t0]["notification_id"] == by_target[t1]["notification_id"]
    status_page = (await rig.get("/")).text
    assert t0 in status_page
    assert t1 in status_page
    assert "(removed)" not in status_page

    second.start()
    rig.clock.advance(timedelta(seconds=10))  # past the retry and its pause
    assert (await workers[t1].step()).outcomes == {"delivered": 1}
    assert second.alert_ids() == first.alert_ids() == {alert["id"]}

    metrics = rig.runtime.metrics.exposition()[0].decode()
    for line in (
        f'zaia_relay_notifications_total{{outcome="delivered",sink="{t0}"}} 1.0',
        f'zaia_relay_notifications_total{{outcome="retry",sink="{t1}"}} 1.0',
        f'zaia_relay_notifications_total{{outcome="delivered",sink="{t1}"}} 1.0',
    ):
        assert line in metrics, line


async def test_a_dead_letter_on_one_target_is_listed_and_replayed_through_the_api(
    rig: Rig, instances: tuple[Alertmanager, Alertmanager]
) -> None:
    first, second = instances
    t0, t1 = target(first), target(second)
    workers = rig.runtime.deliveries.workers
    execution = rig.workspace.create_execution(kind="workflow")
    await rig.cycle()
    rig.workspace.set_status(execution, "failed", error="node crashed")
    await rig.cycle()
    assert (await workers[t0].step()).outcomes == {"delivered": 1}
    assert (await workers[t1].step()).outcomes == {"retry": 1}
    rig.clock.advance(timedelta(minutes=2))  # past max_age: the second's row dies
    assert (await workers[t1].step()).outcomes == {"dead": 1}

    every = (await rig.get("/api/v1/deliveries?sink=am")).json()
    assert [d["sink"] for d in every["dead_letters"]] == [t1]
    assert every["outbox"] == {t1: {"pending": 0, "dead": 1}}
    assert (await rig.get(f"/api/v1/deliveries?sink={t0}")).json()["dead_letters"] == []

    second.start()
    async with httpx.AsyncClient() as client:
        replay = await client.post(
            f"{rig.runtime.http.url}/api/v1/deliveries/retry",
            json={"all": True, "sink": "am"},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"retried": 1}
    rig.clock.advance(timedelta(seconds=10))  # past the pause of the last failure
    assert (await workers[t1].step()).outcomes == {"delivered": 1}
    assert second.alert_ids() == first.alert_ids()
    assert len(first.alert_ids()) == 1
