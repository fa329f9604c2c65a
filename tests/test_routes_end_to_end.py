"""Routes end to end: the simulator over loopback, the relay's own runtime (store, HTTP
API, delivery workers) on an injected clock, and webhook receivers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from relay.app import Runtime, build_runtime
from relay.pipeline import Poller
from relay.settings.loader import parse_settings
from relay.sim import ManualClock, SimServer, SimWorkspace
from tests.relay_process import RelayProcess

KEY = "routes-e2e-key"
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 3, 7, 9, 0, tzinfo=UTC)


@dataclass
class Receivers:
    """One loopback server; each sink posts to its own path."""

    url: str = ""
    got: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.got.setdefault(request.match_info["sink"], []).append(await request.json())
        return web.Response(status=204)


def config(tmp_path: Path, *, sim_url: str, hooks: str) -> str:
    sinks = "".join(
        f"  {name}: {{type: webhook, url: '{hooks}/{name}'}}\n"
        for name in ("pagerduty", "payments", "alerts")
    )
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
log:
  format: json
rules:
  - name: payments-failed
    when: {{status: [failed], types: [agent]}}
    severity: critical
    labels: {{team: payments}}
  - name: workflow-failed
    when: {{status: [failed], types: [workflow]}}
    severity: warning
  - name: workflow-failure-rate
    window: 1h
    when: {{types: [workflow], failure_ratio: {{gt: 0.3}}, min_executions: 3}}
    severity: critical
    labels: {{team: payments}}
    repeat_interval: 10m
sinks:
{sinks}
time_intervals:
  - name: weekends
    weekdays: [saturday, sunday]
    location: Europe/Berlin
routes:
  - name: payments-page
    matchers: ['severity="critical"', 'team=~"pay.*"']
    sinks: [pagerduty, payments]
    group_by: [responder_id]
    mute_time_intervals: [weekends]
  - name: default
    sinks: [alerts]
"""


@dataclass
class Rig:
    clock: ManualClock
    workspace: SimWorkspace
    runtime: Runtime
    receivers: Receivers

    async def cycle(self) -> None:
        self.clock.advance(seconds=15)
        for poller in self.runtime.pollers:
            assert isinstance(poller, Poller)
            await poller.run_one()  # as the daemon does: metrics counted, workers woken
        # Past any group_wait: what is due goes out now.
        self.clock.advance(seconds=15)
        for worker in self.runtime.deliveries.workers.values():
            while (await worker.step()).claimed:
                pass

    async def alerts(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{self.runtime.http.url}/api/v1/alerts")
        assert response.status_code == 200, response.text
        alerts: list[dict[str, Any]] = response.json()["alerts"]
        return alerts


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    clock = ManualClock(request.param)
    workspace = SimWorkspace(api_key=KEY, seed=11, now=clock)
    receivers = Receivers()
    app = web.Application()
    app.router.add_post("/{sink}", receivers.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receivers.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        async with SimServer(workspace) as server:
            text = config(tmp_path, sim_url=server.url, hooks=receivers.url)
            settings = parse_settings(text, environ={})
            async with build_runtime(settings, now=clock) as runtime:
                await runtime.http.start()
                try:
                    yield Rig(clock, workspace, runtime, receivers)
                finally:
                    await runtime.http.stop()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("rig", [MONDAY], indirect=True)
async def test_a_critical_payments_alert_pages_and_reaches_payments_not_the_default(
    rig: Rig,
) -> None:
    agent = rig.workspace.create_execution(kind="agent")
    workflow = rig.workspace.create_execution(kind="workflow")
    await rig.cycle()  # baseline
    rig.workspace.set_status(agent, "failed", error="card declined")
    rig.workspace.set_status(workflow, "failed", error="node crashed")
    await rig.cycle()

    got = rig.receivers.got
    assert sorted(got) == ["alerts", "pagerduty", "payments"]
    for sink in ("pagerduty", "payments"):
        # A grouped route's message is always the group envelope, even for one alert.
        [message] = got[sink]
        assert message["type"] == "alert.group"
        assert message["group"]["route"] == "payments-page"
        assert [n["alert"]["rule"] for n in message["notifications"]] == ["payments-failed"]
    assert [body["alert"]["rule"] for body in got["alerts"]] == ["workflow-failed"]
    alerts = {a["rule"]: a for a in await rig.alerts()}
    assert alerts["payments-failed"]["muted"] == []
    assert sorted(d["sink"] for d in alerts["payments-failed"]["deliveries"]) == [
        "pagerduty",
        "payments",
    ]


@pytest.mark.parametrize("rig", [SATURDAY], indirect=True)
async def test_a_muted_route_sends_nothing_shows_the_alert_muted_and_replays_nothing(
    rig: Rig,
) -> None:
    agent = rig.workspace.create_execution(kind="agent")
    await rig.cycle()
    rig.workspace.set_status(agent, "failed", error="card declined")
    await rig.cycle()
    assert rig.receivers.got == {}, "muted: not even the default route"

    (alert,) = await rig.alerts()
    assert alert["rule"] == "payments-failed"
    assert alert["muted"] == [
        {
            "route": "payments-page",
            "sinks": ["pagerduty", "payments"],
            "reason": "in weekends",
            "kind": "firing",
        }
    ]
    assert alert["deliveries"] == []
    metrics = rig.runtime.metrics.exposition()[0].decode()
    assert 'zaia_relay_alerts_muted_total{route="payments-page"} 1.0' in metrics

    rig.clock.set(datetime(2026, 3, 9, 9, 0, tzinfo=UTC))  # Monday: the mute is over
    await rig.cycle()
    await rig.cycle()
    assert rig.receivers.got == {}, "what the mute held back is never replayed"


@pytest.mark.slow
async def test_the_daemon_logs_what_check_config_warns_of(tmp_path: Path) -> None:
    workspace = SimWorkspace(api_key=KEY, seed=3)
    async with SimServer(workspace) as server:
        text = config(tmp_path, sim_url=server.url, hooks="http://127.0.0.1:9")
        text = text.replace("    sinks: [alerts]\n", "    sinks: []\n")  # `alerts`: unused
        path = tmp_path / "relay.yaml"
        path.write_text(text.replace("polling: fixed", "polling: fixed\n    poll_interval: 1s"))
        relay = await RelayProcess.start(["run", "-c", str(path)])
        try:
            await relay.wait_for_event("config.warning")
            assert await relay.stop() == 0, relay.tail()
        finally:
            await relay.close()
    assert [w["problem"] for w in relay.named("config.warning")] == [
        "sinks.alerts: no rule and no route names it; nothing is sent there",
        # The default route sends nowhere now: the warning rule reaches no sink.
        "rules.1.sinks: no sinks, and no route with sinks matches its alerts "
        '(rule="workflow-failed", severity="warning"); they are recorded, never sent',
    ]


# Late evening in UTC is past midnight in Berlin (UTC+1 in early March): the weekend
# begins at Friday 23:00 UTC and ends at Sunday 23:00 UTC.
FRIDAY_LATE = datetime(2026, 3, 6, 22, 30, tzinfo=UTC)  # Friday 23:30 in Berlin
SUNDAY_LATE = datetime(2026, 3, 8, 22, 30, tzinfo=UTC)  # Sunday 23:30 in Berlin


async def _burst_of_workflow_failures(rig: Rig) -> None:
    """Three failed workflows: the windowed `workflow-failure-rate` fires (payments-page)."""
    workflows = [rig.workspace.create_execution(kind="workflow") for _ in range(3)]
    await rig.cycle()
    for workflow in workflows:
        rig.workspace.set_status(workflow, "failed", error="node crashed")
    await rig.cycle()


def _kinds_of(messages: list[dict[str, Any]], rule: str) -> list[str]:
    """The kinds of the notifications about `rule` that a sink received, in order."""
    return [
        n["type"].removeprefix("alert.")
        for message in messages
        for n in message.get("notifications", [message])
        if n["alert"]["rule"] == rule
    ]


@pytest.mark.parametrize("rig", [SUNDAY_LATE], indirect=True)
async def test_a_firing_muted_on_sunday_is_followed_by_nothing_on_monday(rig: Rig) -> None:
    await _burst_of_workflow_failures(rig)  # Sunday: muted
    rig.clock.set(datetime(2026, 3, 8, 23, 5, tzinfo=UTC))  # Monday 00:05 in Berlin
    await rig.cycle()  # a reminder is due: the mute is over, but pagerduty never had it
    rig.clock.set(datetime(2026, 3, 8, 23, 45, tzinfo=UTC))  # the failures left the window
    await rig.cycle()  # resolved

    for sink in ("pagerduty", "payments"):
        assert _kinds_of(rig.receivers.got.get(sink, []), "workflow-failure-rate") == []
    (alert,) = [a for a in await rig.alerts() if a["rule"] == "workflow-failure-rate"]
    assert alert["state"] == "resolved"
    held = "firing held back in weekends"
    assert alert["muted"] == [
        {
            "route": "payments-page",
            "sinks": ["pagerduty", "payments"],
            "reason": "in weekends",
            "kind": "firing",
        },
        {
            "route": "payments-page",
            "sinks": ["pagerduty", "payments"],
            "reason": held,
            "kind": "resolved",
        },
    ]
    assert alert["deliveries"] == []


@pytest.mark.parametrize("rig", [FRIDAY_LATE], indirect=True)
async def test_a_firing_sent_on_friday_is_resolved_on_saturday_reminders_muted(rig: Rig) -> None:
    await _burst_of_workflow_failures(rig)  # Friday: sent
    rig.clock.set(datetime(2026, 3, 6, 23, 5, tzinfo=UTC))  # Saturday 00:05 in Berlin
    await rig.cycle()  # a reminder is due, inside the mute: held back
    rig.clock.set(datetime(2026, 3, 6, 23, 45, tzinfo=UTC))
    await rig.cycle()  # resolved, still inside the mute: sent all the same

    for sink in ("pagerduty", "payments"):
        kinds = _kinds_of(rig.receivers.got[sink], "workflow-failure-rate")
        assert kinds == ["firing", "resolved"], sink
    (alert,) = [a for a in await rig.alerts() if a["rule"] == "workflow-failure-rate"]
    assert alert["state"] == "resolved"
    assert alert["muted"] == []  # the resolve held nothing back
    assert sorted((d["sink"], d["kind"]) for d in alert["deliveries"]) == [
        ("pagerduty", "firing"),
        ("pagerduty", "resolved"),
        ("payments", "firing"),
        ("payments", "resolved"),
    ]
