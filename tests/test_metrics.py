"""Metrics: names and label sets as DESIGN.md lists them, fed by the real poller, client
and engine against the simulator; bounded labels; and `promtool check metrics` on the
real /metrics output of the server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import get_args

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from relay.delivery.worker import DeliveryResult, OnResult
from relay.domain.alerts import Notification
from relay.domain.cadence import CadenceInputs, RunningView, plan_next
from relay.domain.lifetimes import Lifetimes
from relay.errors import SourceUnauthorized, SourceUnavailable, StoreError
from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import Poller
from relay.sim import ManualClock, SimServer, SimWorkspace
from relay.source import ClientConfig, ZaiaClient
from relay.store.sqlite import SqliteStore
from relay.telemetry.metrics import RelayMetrics
from relay.vocab import CYCLE_OUTCOMES, NOTIFICATION_OUTCOMES, CycleOutcome, NotificationOutcome
from tests.conftest import SIM_API_KEY
from tests.http_rig import START, commit_alerts, http_rig, make_alert
from tests.test_poller import report
from tests.tools import require_tool

# DESIGN.md "Metrics": family name (as exposed) -> label names.
EXPECTED = {
    "zaia_relay_build_info": {"version"},
    "zaia_relay_poll_cycles_total": {"source", "outcome"},
    "zaia_relay_poll_duration_seconds": {"source"},
    "zaia_relay_api_requests_total": {"source", "endpoint", "code"},
    "zaia_relay_last_successful_poll_timestamp_seconds": {"source"},
    "zaia_relay_executions_running": {"source"},
    "zaia_relay_execution_transitions_total": {"source", "to", "type"},
    "zaia_relay_execution_credits_total": {"source", "status"},
    "zaia_relay_alerts_total": {"rule", "severity", "state"},
    "zaia_relay_notifications_total": {"sink", "outcome"},
    "zaia_relay_notification_duration_seconds": {"sink"},
    "zaia_relay_detection_latency_seconds": set(),
    "zaia_relay_outbox_pending": {"sink"},
    "zaia_relay_dead_letters": {"sink"},
}


def value(metrics: RelayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def families(text: str) -> dict[str, set[str]]:
    """Exposed family names (with `_total` for counters) -> label names of their samples."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        name = family.name + ("_total" if family.type == "counter" else "")
        if family.type == "info":
            name += "_info"
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        found[name] = labels
    return found


@dataclass
class PollRig:
    workspace: SimWorkspace
    clock: ManualClock
    metrics: RelayMetrics
    poller: Poller


@pytest.fixture
async def poll_rig(
    tmp_path: Path, sim_workspace: SimWorkspace, sim_server: SimServer, sim_clock: ManualClock
) -> AsyncIterator[PollRig]:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"], sinks=["oncall"], now=sim_clock)
    config = ClientConfig(name="prod", base_url=sim_server.url, api_key=SIM_API_KEY)
    async with (
        SqliteStore(tmp_path / "state.db") as store,
        ZaiaClient(config, on_request=metrics.request_counter("prod")) as client,
    ):
        engine = SourceEngine(ScanLimits(source="prod"), client=client, store=store, now=sim_clock)
        poller = Poller(
            engine,
            interval_s=15,
            cycle_timeout_s=30,
            on_cycle=metrics.on_cycle,
            wall_clock=sim_clock,
        )
        yield PollRig(sim_workspace, sim_clock, metrics, poller)


async def test_every_designed_metric_is_exposed_with_its_label_set() -> None:
    metrics = RelayMetrics(CollectorRegistry(), version="1.2.3", sources=["prod"], sinks=["x"])
    metrics.transitions.labels("prod", "failed", "agent").inc()
    metrics.credits.labels("prod", "failed").inc(3)
    metrics.alert("execution-failed", severity="critical", state="firing")
    metrics.api_request("prod", "list", 200)
    metrics.observe_detection_latency(4.0)
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    text = body.decode()
    exposed = families(text)
    for name, labels in EXPECTED.items():
        assert exposed.get(name) == labels, name
    assert 'zaia_relay_build_info{version="1.2.3"} 1.0' in text
    assert "_created" not in text


async def test_responder_names_are_an_info_metric_per_source() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod", "staging"])
    names = {"cb364d8f": "Sales Qualifier", "a1b2": "Nightly sync"}
    for source in ("prod", "staging"):
        metrics.set_responder_names(source, names)
    family = "zaia_relay_responder_info"
    for source in ("prod", "staging"):
        labels = {"source": source, "responder_id": "a1b2", "name": "Nightly sync"}
        assert metrics.registry.get_sample_value(family, labels) == 1
    wrong = {"source": "prod", "responder_id": "a1b2", "name": "Sales Qualifier"}
    assert metrics.registry.get_sample_value(family, wrong) is None
    exposed = families(metrics.exposition()[0].decode())
    assert exposed[family] == {"source", "responder_id", "name"}


async def test_configured_sources_and_sinks_start_at_zero() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"], sinks=["oncall"])
    assert value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="ok") == 0
    assert value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="timeout") == 0
    assert value(metrics, "zaia_relay_executions_running", source="prod") == 0
    assert value(metrics, "zaia_relay_notifications_total", sink="oncall", outcome="dead") == 0
    assert value(metrics, "zaia_relay_outbox_pending", sink="oncall") == 0
    assert value(metrics, "zaia_relay_dead_letters", sink="oncall") == 0


async def test_poll_cycles_feed_the_poll_and_execution_metrics(poll_rig: PollRig) -> None:
    metrics, workspace, clock = poll_rig.metrics, poll_rig.workspace, poll_rig.clock
    await poll_rig.poller.run_one()  # the first start records a baseline
    assert value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="ok") == 1
    running = workspace.counts_by_status()["running"]
    assert value(metrics, "zaia_relay_executions_running", source="prod") == running
    assert (
        value(metrics, "zaia_relay_last_successful_poll_timestamp_seconds", source="prod")
        == clock().timestamp()
    )
    baseline_pages = value(
        metrics, "zaia_relay_api_requests_total", source="prod", endpoint="list", code="200"
    )
    assert baseline_pages is not None
    assert baseline_pages >= 1
    # The baseline is not counted as transitions: nothing happened, the relay looked.
    assert not any(
        s.name == "zaia_relay_execution_transitions_total"
        for f in metrics.registry.collect()
        for s in f.samples
    )

    clock.advance(seconds=15)
    agents = workspace.execution_ids(status="running", kind="agent")
    workspace.add_credits(agents[0], 40.0)
    workspace.set_status(agents[0], "failed", error="tool exploded")
    credits = workspace.raw(agents[0])["creditsUsed"]
    workspace.set_status(agents[1], "completed")
    await poll_rig.poller.run_one()

    assert value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="ok") == 2
    assert (
        value(
            metrics,
            "zaia_relay_execution_transitions_total",
            source="prod",
            to="failed",
            type="agent",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "zaia_relay_execution_transitions_total",
            source="prod",
            to="completed",
            type="agent",
        )
        == 1
    )
    assert value(metrics, "zaia_relay_execution_credits_total", source="prod", status="failed") == (
        pytest.approx(credits)
    )
    assert value(metrics, "zaia_relay_executions_running", source="prod") == running - 2
    assert value(metrics, "zaia_relay_poll_duration_seconds_count", source="prod") == 2

    # No execution id ever becomes a label value.
    text = metrics.exposition()[0].decode()
    for execution_id in workspace.execution_ids():
        assert execution_id not in text


async def test_unauthorized_cycles_are_counted_with_their_status_code(
    tmp_path: Path, sim_server: SimServer, sim_clock: ManualClock
) -> None:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"], now=sim_clock)
    config = ClientConfig(name="prod", base_url=sim_server.url, api_key="wrong-key")
    async with (
        SqliteStore(tmp_path / "state.db") as store,
        ZaiaClient(config, on_request=metrics.request_counter("prod")) as client,
    ):
        engine = SourceEngine(ScanLimits(source="prod"), client=client, store=store)
        poller = Poller(engine, interval_s=15, cycle_timeout_s=30, on_cycle=metrics.on_cycle)
        await poller.run_one()
    assert (
        value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="unauthorized") == 1
    )
    assert value(metrics, "zaia_relay_poll_cycles_total", source="prod", outcome="ok") == 0
    assert (
        value(metrics, "zaia_relay_api_requests_total", source="prod", endpoint="list", code="401")
        == 1
    )
    assert value(metrics, "zaia_relay_last_successful_poll_timestamp_seconds", source="prod") == 0


async def test_alerts_and_detection_latency() -> None:
    metrics = RelayMetrics(CollectorRegistry())
    alert = make_alert(1)  # the execution ended 5 s before the alert's time
    assert alert.execution is not None
    assert alert.execution.ended_at is not None
    queued_at = alert.execution.ended_at + timedelta(seconds=17)
    resolved = replace(alert, id="alert_other", state="resolved", execution=None)
    metrics.alerts_queued([alert, resolved], queued_at=queued_at)
    labels = {"rule": "execution-failed", "severity": "critical"}
    assert value(metrics, "zaia_relay_alerts_total", **labels, state="firing") == 1
    assert value(metrics, "zaia_relay_alerts_total", **labels, state="resolved") == 1
    assert value(metrics, "zaia_relay_detection_latency_seconds_count") == 1
    assert value(metrics, "zaia_relay_detection_latency_seconds_sum") == 17
    assert value(metrics, "zaia_relay_detection_latency_seconds_bucket", le="15.0") == 0
    assert value(metrics, "zaia_relay_detection_latency_seconds_bucket", le="20.0") == 1


def firing(n: int, sink: str = "oncall") -> Notification:
    return Notification.about(make_alert(n), sink=sink, kind="firing", created_at=START)


async def test_notifications_and_outbox_gauges() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sinks=["oncall"])
    # As the delivery worker reports them: a dead letter given up without a request
    # (older than max_age) took no time talking to the sink.
    metrics.on_delivery(DeliveryResult("oncall", "delivered", (firing(1),), 0.04))
    metrics.on_delivery(DeliveryResult("oncall", "retry", (firing(2),), 2.0, "HTTP 503"))
    metrics.on_delivery(DeliveryResult("oncall", "dead", (firing(3),), 0.0, "max_age"))
    assert value(metrics, "zaia_relay_notifications_total", sink="oncall", outcome="retry") == 1
    assert value(metrics, "zaia_relay_notifications_total", sink="oncall", outcome="dead") == 1
    assert value(metrics, "zaia_relay_notification_duration_seconds_count", sink="oncall") == 3
    assert value(
        metrics, "zaia_relay_notification_duration_seconds_sum", sink="oncall"
    ) == pytest.approx(2.04)

    metrics.set_outbox({"oncall": (4, 1), "finops": (2, 0)})
    assert value(metrics, "zaia_relay_outbox_pending", sink="finops") == 2
    assert value(metrics, "zaia_relay_dead_letters", sink="oncall") == 1
    # A sink whose rows are all gone drops to zero instead of keeping its last value.
    metrics.set_outbox({"oncall": (0, 1)})
    assert value(metrics, "zaia_relay_outbox_pending", sink="finops") == 0


async def test_openmetrics_is_served_when_asked(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        response = await rig.client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")
        plain = await rig.client.get("/metrics")
        assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")


async def test_metrics_endpoint_reads_the_outbox_at_scrape_time(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        await commit_alerts(
            rig.store, [make_alert(n) for n in range(3)], at=rig.clock(), sinks=("finops",)
        )
        text = (await rig.client.get("/metrics")).text
        assert 'zaia_relay_outbox_pending{sink="finops"} 3.0' in text
        assert 'zaia_relay_outbox_pending{sink="oncall"} 0.0' in text
        assert 'zaia_relay_dead_letters{sink="finops"} 0.0' in text


async def test_promtool_accepts_the_real_metrics_output(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    async with http_rig(tmp_path) as rig:
        metrics = rig.metrics
        metrics.api_request("prod", "list", 200)
        metrics.api_request("prod", "get", "error")
        metrics.transitions.labels("prod", "failed", "workflow").inc()
        metrics.credits.labels("prod", "cancelled").inc(12.5)
        metrics.alerts_queued([make_alert(1)], queued_at=rig.clock())
        metrics.on_delivery(DeliveryResult("oncall", "delivered", (firing(3),), 0.2))
        metrics.set_responder_names("prod", {"cb364d8f": 'Sales "Qualifier"\\ agent'})
        await commit_alerts(rig.store, [make_alert(2)], at=rig.clock())
        response = await rig.client.get("/metrics")
        assert response.status_code == 200
        text = response.text
    assert families(text).keys() >= EXPECTED.keys()
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(text.encode()), timeout=60)
    assert process.returncode == 0, output.decode()
    assert output.decode().strip() == "", output.decode()


async def test_delivery_results_of_the_worker_count_every_notification() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sinks=["oncall"])
    notifications = tuple(firing(n) for n in range(3))
    on_result: OnResult = metrics.on_delivery
    on_result(DeliveryResult("oncall", "delivered", notifications, 0.05))
    on_result(DeliveryResult("oncall", "dead", notifications[:1], 0.5, "HTTP 404"))
    assert value(metrics, "zaia_relay_notifications_total", sink="oncall", outcome="delivered") == 3
    assert value(metrics, "zaia_relay_notifications_total", sink="oncall", outcome="dead") == 1
    assert value(metrics, "zaia_relay_notification_duration_seconds_count", sink="oncall") == 2
    assert value(
        metrics, "zaia_relay_notification_duration_seconds_sum", sink="oncall"
    ) == pytest.approx(0.55)


def outcome_labels(metrics: RelayMetrics, family: str, **labels: str) -> set[str]:
    """The `outcome` label values of the samples of `family` that carry `labels`."""
    return {
        sample.labels["outcome"]
        for metric in metrics.registry.collect()
        if metric.name == family
        for sample in metric.samples
        if sample.name == f"{family}_total" and labels.items() <= sample.labels.items()
    }


def test_precreated_outcomes_are_those_of_the_literals() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"], sinks=["oncall"])
    assert get_args(CycleOutcome) == CYCLE_OUTCOMES
    assert get_args(NotificationOutcome) == NOTIFICATION_OUTCOMES
    cycles = outcome_labels(metrics, "zaia_relay_poll_cycles", source="prod")
    assert cycles == set(get_args(CycleOutcome))
    assert "standby" in cycles  # the poller emits it
    notifications = outcome_labels(metrics, "zaia_relay_notifications", sink="oncall")
    assert notifications == set(get_args(NotificationOutcome))


async def test_every_outcome_the_poller_emits_is_precreated() -> None:
    class EveryBranch:
        """A cycle of each kind in turn: ok, then each failure, then a hung one."""

        source = "prod"

        def __init__(self) -> None:
            self.errors: list[Exception | None] = [
                None,
                SourceUnauthorized("prod", "refused"),
                SourceUnavailable("prod", "HTTP 503"),
                StoreError("disk full"),
            ]

        def forget(self) -> None:
            pass

        async def run_cycle(self) -> CycleReport:
            if not self.errors:
                await asyncio.Event().wait()  # hangs until the cycle timeout
            error = self.errors.pop(0)
            if error is not None:
                raise error
            return report()

    leads = [False, True, True, True, True, True]

    async def lead() -> bool:
        return leads.pop(0)

    emitted: list[str] = []
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"])

    def on_cycle(
        source: str, outcome: str, duration_s: float, cycle_report: CycleReport | None
    ) -> None:
        emitted.append(outcome)
        assert value(metrics, "zaia_relay_poll_cycles_total", source=source, outcome=outcome) == 0

    poller = Poller(
        EveryBranch(), interval_s=15, cycle_timeout_s=0.05, on_cycle=on_cycle, lead=lead
    )
    for _ in leads.copy():
        await poller.run_one()
    assert emitted == ["standby", "ok", "unauthorized", "source_error", "store_error", "timeout"]
    assert set(emitted) <= set(CYCLE_OUTCOMES)


def test_the_cadence_reports_staleness_budget_and_the_rate_in_use() -> None:
    metrics = RelayMetrics(CollectorRegistry(), sources=["prod"])
    assert value(metrics, "zaia_relay_poll_staleness_seconds", source="prod") == 0
    metrics.on_budget("prod", budget_per_minute=60.0)
    assert value(metrics, "zaia_relay_request_budget_per_minute", source="prod") == 60
    assert value(metrics, "zaia_relay_request_rate_per_minute", source="prod") == 60
    plan = plan_next(
        CadenceInputs(
            now_s=100.0,
            running=[RunningView("e1", "r", age_s=5.0, last_read_s=58.0, page=3)],
            last_top_read_s=99.0,
            arrival_rate_per_s=0.0,
            # A 429 halved the rate the source allows itself.
            allowed_rate_per_s=0.5,
            poll_interval_s=60.0,
            lifetimes=Lifetimes(),
        )
    )
    metrics.on_plan("prod", plan)
    assert value(metrics, "zaia_relay_poll_staleness_seconds", source="prod") == 42
    assert value(metrics, "zaia_relay_request_rate_per_minute", source="prod") == 30
    assert value(metrics, "zaia_relay_request_budget_per_minute", source="prod") == 60
    # A source without a ceiling says 0.
    metrics.on_budget("prod", budget_per_minute=None)
    assert value(metrics, "zaia_relay_request_budget_per_minute", source="prod") == 0
