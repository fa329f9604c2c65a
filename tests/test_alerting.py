"""Rules wired into cycles: causes through /nestings, silences, windowed groups, one
transaction with the outbox. The simulator over loopback, a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from relay.domain.silences import config_silences, new_silence
from relay.matchers import Matcher
from relay.pipeline.alerting import AlertPlanner
from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.settings import Settings
from relay.settings.loader import parse_settings
from relay.sim import Fault, ManualClock, SimServer, SimWorkspace
from relay.source import ClientConfig, ZaiaClient
from relay.store.sqlite import SqliteStore

KEY = "alerting-test-key"

RULES = """
sources:
  - name: prod
    api_key: unused
rules:
  - name: root-failed
    when: {status: [failed], root_only: true}
    severity: critical
    sinks: [hook]
  - name: any-failed
    when: {status: [failed], types: [workflow]}
    severity: warning
    sinks: [hook]
  - name: spike
    window: 10m
    group_by: [responder_id]
    when: {failure_ratio: {gt: 0.5}, min_executions: 4}
    severity: critical
    sinks: [hook]
    repeat_interval: 1h
sinks:
  hook:
    type: webhook
    url: http://127.0.0.1:9/hook
"""


@dataclass
class Rig:
    workspace: SimWorkspace
    clock: ManualClock
    store: SqliteStore
    client: ZaiaClient
    settings: Settings
    requests: list[str]

    def engine(self, *, nestings_budget_s: float = 10.0) -> SourceEngine:
        planner = AlertPlanner(
            nestings_budget_s=nestings_budget_s,
            source="prod",
            rules=self.settings.rules,
            alerts=self.settings.alerts,
            config_silences=config_silences(self.settings.silences),
            client=self.client,
            store=self.store,
        )
        return SourceEngine(
            ScanLimits(source="prod"),
            client=self.client,
            store=self.store,
            planner=planner,
            now=self.clock,
        )

    async def cycle(self) -> CycleReport:
        self.clock.advance(seconds=15)
        return await self.engine().run_cycle()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock()
    workspace = SimWorkspace(api_key=KEY, seed=4, now=clock)
    requests: list[str] = []
    settings = parse_settings(RULES, environ={})
    async with SimServer(workspace) as server, SqliteStore(tmp_path / "state.db") as store:
        config = ClientConfig(name="prod", base_url=server.url, api_key=KEY)
        async with ZaiaClient(config, on_request=lambda e, _: requests.append(e)) as client:
            yield Rig(workspace, clock, store, client, settings, requests)


async def test_a_failing_child_is_followed_through_nestings_and_named(rig: Rig) -> None:
    parent = rig.workspace.create_execution(kind="agent")
    child = rig.workspace.spawn_child(parent, kind="agent")
    await rig.cycle()  # baseline

    leaked = "bob@example.com"
    rig.workspace.set_status(child, "failed", error=f"CRM rejected the call for {leaked}")
    quiet = await rig.cycle()
    assert [a.rule for a in quiet.new_alerts] == [], "root_only: the child alone is not alerted"

    rig.workspace.set_status(parent, "failed")
    rig.requests.clear()
    report = await rig.cycle()
    [alert] = report.new_alerts
    assert alert.rule == "root-failed"
    assert alert.execution is not None
    assert alert.execution.id == parent
    assert alert.cause is not None
    assert alert.cause.chain == (parent, child)
    assert "CRM rejected the call" in (alert.cause.error_excerpt or "")
    assert leaked not in (alert.cause.error_excerpt or ""), "e-mail addresses are redacted"
    assert rig.requests.count("nestings") == 1
    assert [(n.sink, n.kind) for n in report.notifications] == [("hook", "firing")]
    assert (await rig.store.outbox_counts())["hook"] == (1, 0)


async def test_each_alert_is_queued_once_however_often_it_is_seen(rig: Rig) -> None:
    target = rig.workspace.create_execution(kind="workflow")
    await rig.cycle()
    rig.workspace.set_status(target, "failed", error="node crashed")
    first = await rig.cycle()
    assert {a.rule for a in first.new_alerts} == {"root-failed", "any-failed"}
    for _ in range(3):
        again = await rig.cycle()
        assert again.new_alerts == ()
    assert (await rig.store.outbox_counts())["hook"] == (2, 0)


async def test_a_silenced_alert_is_recorded_not_sent_and_never_replayed(rig: Rig) -> None:
    target = rig.workspace.create_execution(kind="agent")
    await rig.cycle()
    silence = new_silence(
        [Matcher.equal("rule", "root-failed")],
        ends_at=rig.clock() + timedelta(hours=1),
        now=rig.clock(),
    )
    await rig.store.add_silence(silence)
    rig.workspace.set_status(target, "failed", error="boom")
    report = await rig.cycle()
    [alert] = report.new_alerts
    assert alert.silenced_by == silence.id
    assert report.notifications == ()
    assert await rig.store.outbox_counts() == {}

    await rig.store.expire_silence(silence.id, now=rig.clock())
    await rig.cycle()
    assert await rig.store.outbox_counts() == {}, "expiring a silence replays nothing"
    stored = await rig.store.get_alert(alert.id)
    assert stored is not None
    assert stored.alert.silenced_by == silence.id


async def test_a_windowed_group_fires_then_resolves_across_restarts(rig: Rig) -> None:
    responder = rig.workspace.responder_ids("agent")[0]
    await rig.cycle()
    for index in range(6):
        execution = rig.workspace.create_execution(responder_id=responder)
        rig.workspace.set_status(execution, "failed" if index < 4 else "completed")
    fired = await rig.cycle()
    [alert] = [a for a in fired.new_alerts if a.rule == "spike"]
    assert alert.state == "firing"
    assert alert.group == {"responder_id": responder}
    assert alert.value == pytest.approx(4 / 6)

    # A new engine (a restart) continues the same episode from the stored group state.
    for _ in range(10):
        execution = rig.workspace.create_execution(responder_id=responder)
        rig.workspace.set_status(execution, "completed")
    resolved = await rig.cycle()
    assert [(a.id, a.state) for a in resolved.resolved_alerts] == [(alert.id, "resolved")]
    kinds = sorted(n.kind for n in resolved.notifications if n.alert.rule == "spike")
    assert kinds == ["resolved"]


async def test_a_slow_nestings_endpoint_delays_no_alert(rig: Rig) -> None:
    parent = rig.workspace.create_execution(kind="agent")
    child = rig.workspace.spawn_child(parent, kind="agent")
    await rig.cycle()
    rig.workspace.set_status(child, "failed", error="child broke")
    rig.workspace.set_status(parent, "failed")
    rig.workspace.inject_fault(Fault("delay", endpoint="nestings", delay_s=30, times=10))
    rig.clock.advance(seconds=15)
    report = await rig.engine(nestings_budget_s=0.3).run_cycle()
    [alert] = [a for a in report.new_alerts if a.rule == "root-failed"]
    assert alert.execution is not None
    assert alert.execution.id == parent
    assert alert.cause is not None, "the cause found in the execution itself is kept"
    assert rig.workspace.requests["nestings"] == 1, "one attempt, then the budget is spent"


async def test_a_dry_run_lists_only_what_a_real_run_would_send(rig: Rig) -> None:
    rig.settings = parse_settings(
        """
sources: [{name: prod, api_key: unused}]
rules:
  - name: stuck
    when: {running_for: {gt: 1m}}
    severity: warning
    sinks: [hook]
sinks: {hook: {type: webhook, url: "http://127.0.0.1:9/hook"}}
""",
        environ={},
    )
    rig.workspace.create_execution(created_at=rig.clock() - timedelta(minutes=5))
    first = await rig.cycle()
    [alert] = first.new_alerts
    assert [n.alert.id for n in first.notifications] == [alert.id]

    rig.clock.advance(seconds=15)
    dry = await rig.engine().run_cycle(commit=False)
    assert (dry.new_alerts, dry.notifications) == ((), ()), "already sent: nothing to show"


async def test_an_acknowledged_windowed_alert_sends_no_reminders_but_resolves(rig: Rig) -> None:
    rig.settings = parse_settings(
        RULES.replace("repeat_interval: 1h", "repeat_interval: 2m"), environ={}
    )
    responder = rig.workspace.responder_ids("agent")[0]
    await rig.cycle()
    for index in range(6):
        execution = rig.workspace.create_execution(responder_id=responder)
        rig.workspace.set_status(execution, "failed" if index < 4 else "completed")
    fired = await rig.cycle()
    [alert] = [a for a in fired.new_alerts if a.rule == "spike"]

    rig.clock.advance(seconds=120)
    reminded = await rig.cycle()
    assert [n.kind for n in reminded.notifications if n.alert.id == alert.id] == ["reminder"]

    assert await rig.store.acknowledge_alert(alert.id, by="admin", at=rig.clock())
    for _ in range(3):
        rig.clock.advance(seconds=120)
        quiet = await rig.cycle()
        assert [n for n in quiet.notifications if n.alert.id == alert.id] == []
    stored = await rig.store.get_alert(alert.id)
    assert stored is not None
    assert stored.alert.state == "firing", "still firing: only its reminders are skipped"
    assert stored.acknowledgement is not None, "the group's updates keep the acknowledgement"

    for _ in range(12):
        execution = rig.workspace.create_execution(responder_id=responder)
        rig.workspace.set_status(execution, "completed")
    resolved = await rig.cycle()
    assert [n.kind for n in resolved.notifications if n.alert.id == alert.id] == ["resolved"]
