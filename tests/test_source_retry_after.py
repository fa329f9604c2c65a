"""Issue 13: no answer of the Zaia API stalls a source. Its `Retry-After` counts as
`max_retry_after` past it (or unreadable), and a 429 to a read by id or to `/nestings`
never holds up the list reads. The simulator (with its fault injection) over loopback,
a real SQLite store, the real fixed poll loop; only the loop's sleep is recorded
instead of slept."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from relay.domain.budget import RequestBudget
from relay.domain.silences import config_silences
from relay.errors import SourceRateLimited
from relay.pipeline.alerting import AlertPlanner
from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import Poller
from relay.settings.loader import parse_settings
from relay.sim import Fault, ManualClock, SimServer, SimWorkspace
from relay.source import ClientConfig, ZaiaClient
from relay.source.gate import BudgetGate
from relay.store.sqlite import SqliteStore
from tests.test_engine import Rig as EngineRig

KEY = "retry-after-test-key"
NASTY = ["999999999999", "9" * 400, "-5", "Fri, 31 Dec 9999 23:59:59 GMT"]
INTERVAL_S = 15.0
SETTINGS = parse_settings(
    """
sources: [{name: prod, api_key: unused}]
rules:
  - name: root-failed
    when: {status: [failed], root_only: true}
    severity: critical
    sinks: [hook]
sinks: {hook: {type: webhook, url: "http://127.0.0.1:9/hook"}}
""",
    environ={},
)


@dataclass
class Rig(EngineRig):
    """The engine tests' rig, with a poller that records its sleeps and reports."""

    sleeps: list[float] = field(default_factory=list)
    reports: list[CycleReport] = field(default_factory=list)

    def poller(self, limits: ScanLimits) -> Poller:
        planner = AlertPlanner(
            source="prod",
            rules=SETTINGS.rules,
            alerts=SETTINGS.alerts,
            config_silences=config_silences(SETTINGS.silences),
            client=self.client,
            store=self.store,
        )
        engine = SourceEngine(
            limits, client=self.client, store=self.store, planner=planner, now=self.clock
        )

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.clock.advance(seconds=seconds)

        def on_cycle(_: str, outcome: str, __: float, report: CycleReport | None) -> None:
            if report is not None:
                self.reports.append(report)

        return Poller(
            engine,
            interval_s=INTERVAL_S,
            cycle_timeout_s=30.0,
            sleep=sleep,
            wall_clock=self.clock,
            on_cycle=on_cycle,
        )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock()
    workspace = SimWorkspace(api_key=KEY, seed=13, now=clock)
    requests: list[str] = []
    # A generous budget: the gate is what a drill-down 429 must not close on the list.
    gate = BudgetGate(RequestBudget.per_minute(600), source="prod", max_wait_s=5.0)
    async with SimServer(workspace) as server, SqliteStore(tmp_path / "state.db") as store:
        config = ClientConfig(name="prod", base_url=server.url, api_key=KEY, page_size=2)
        count = lambda endpoint, _: requests.append(endpoint)  # noqa: E731
        async with ZaiaClient(config, on_request=count, gate=gate) as client:
            yield Rig(workspace, clock, store, client, requests)


@pytest.mark.parametrize("value", NASTY)
async def test_a_nasty_retry_after_on_the_list_holds_the_source_back_max_retry_after(
    rig: Rig, value: str
) -> None:
    rig.workspace.create_execution()
    rig.workspace.inject_fault(Fault("retry_after", endpoint="list", retry_after=value, times=9))
    with capture_logs() as logs:
        await rig.poller(ScanLimits(source="prod", page_size=2)).run(max_cycles=2)
    # Given up at once (too long to wait within a cycle); the next cycle is held 5m,
    # not for ever, and the gate (on its own clock) refuses a list read meanwhile.
    assert rig.requests == ["list"]
    assert rig.sleeps == [pytest.approx(300.0, abs=0.5)]
    [capped] = [e for e in logs if e["event"] == "source.retry_after_capped"]
    assert capped["used_s"] == 300.0
    assert "max_retry_after" in capped["hint"]


async def test_a_429_from_nestings_sends_the_alert_and_keeps_the_schedule(rig: Rig) -> None:
    parent = rig.workspace.create_execution(kind="agent")
    child = rig.workspace.spawn_child(parent, kind="agent")
    poller = rig.poller(ScanLimits(source="prod", page_size=2))
    await poller.run_one()
    rig.workspace.set_status(child, "failed", error="child broke")
    rig.workspace.set_status(parent, "failed")
    rig.workspace.inject_fault(Fault("retry_after", endpoint="nestings", retry_after="3600"))
    began = time.monotonic()
    await poller.run(max_cycles=2)
    [alert] = rig.reports[1].new_alerts
    assert alert.rule == "root-failed", "the alert goes out without the drill-down"
    assert alert.cause is not None
    assert alert.cause.chain == (parent,), "the child was not followed"
    assert rig.requests.count("nestings") == 1, "one attempt: it has a fallback"
    assert rig.requests[-1] == "list", "the next cycle read the list"
    assert len(rig.sleeps) == 1
    assert rig.sleeps[0] <= INTERVAL_S, "the next cycle on time"
    assert time.monotonic() - began < 5.0, "the gate did not hold the list for the hour"


async def test_a_429_to_a_read_by_id_never_stalls_the_list(rig: Rig) -> None:
    deep = rig.workspace.create_execution()
    # One page of two, and the running one below it: it is read by id.
    poller = rig.poller(ScanLimits(source="prod", page_size=2, max_pages=1))
    await poller.run_one()
    newer = [rig.workspace.create_execution() for _ in range(2)]
    rig.workspace.inject_fault(Fault("retry_after", endpoint="get", retry_after="3600", times=9))
    began = time.monotonic()
    with capture_logs() as logs:
        await poller.run(max_cycles=2)
    assert poller.health.last_outcome == "ok"
    assert rig.requests.count("get") == 2, "one attempt a cycle, not retried"
    assert len(rig.sleeps) == 1
    assert rig.sleeps[0] <= INTERVAL_S, "the next cycle on time"
    assert time.monotonic() - began < 5.0
    assert {e["event"] for e in logs} >= {"poll.refresh_rate_limited"}
    stored = await rig.store.load_states("prod", [deep, *newer])
    assert set(stored) == {deep, *newer}, "what the list showed was committed"


async def test_a_capped_retry_after_is_handed_to_the_caller_as_the_cap(rig: Rig) -> None:
    rig.workspace.inject_fault(Fault("retry_after", endpoint="list", retry_after="-5", times=9))
    with pytest.raises(SourceRateLimited) as caught:
        await rig.client.list_page(1)
    assert caught.value.retry_after_s == 300.0
