"""Every metric the dashboard and the alert rules query is one the relay exports.

Three levels, from cheapest to most real:
1. the names against DESIGN.md's metric list (the contract);
2. against a fresh `RelayMetrics` registry;
3. against the live `/metrics` of a running relay (`zaia-relay run` as a subprocess,
   polling the simulator).
"""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from relay.sim import SimServer, SimWorkspace
from relay.telemetry.metrics import RelayMetrics
from tests.deploy_support import DASHBOARD_FILE, RULES_FILE, family_of, metric_names
from tests.relay_process import RelayProcess

# DESIGN.md "Metrics": family -> (type, labels). Histograms are assumed for the
# *_seconds durations: the dashboard takes quantiles from their buckets.
DESIGN_METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "zaia_relay_build_info": ("gauge", frozenset({"version"})),
    "zaia_relay_poll_cycles_total": ("counter", frozenset({"source", "outcome"})),
    "zaia_relay_poll_duration_seconds": ("histogram", frozenset({"source"})),
    "zaia_relay_api_requests_total": ("counter", frozenset({"source", "endpoint", "code"})),
    "zaia_relay_last_successful_poll_timestamp_seconds": ("gauge", frozenset({"source"})),
    "zaia_relay_executions_running": ("gauge", frozenset({"source"})),
    "zaia_relay_execution_transitions_total": ("counter", frozenset({"source", "to", "type"})),
    "zaia_relay_execution_credits_total": ("counter", frozenset({"source", "status"})),
    "zaia_relay_alerts_total": ("counter", frozenset({"rule", "severity", "state"})),
    "zaia_relay_notifications_total": ("counter", frozenset({"sink", "outcome"})),
    "zaia_relay_notification_duration_seconds": ("histogram", frozenset({"sink"})),
    "zaia_relay_detection_latency_seconds": ("histogram", frozenset()),
    "zaia_relay_outbox_pending": ("gauge", frozenset({"sink"})),
    "zaia_relay_dead_letters": ("gauge", frozenset({"sink"})),
}
# Beyond DESIGN.md: the per-responder counter behind the dashboard's failure ratio per
# responder (responder ids are bounded by the workspace's agents and workflows), and the
# relay's own errors while delivering (a self-alert).
EXTRA_METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "zaia_relay_delivery_errors_total": ("counter", frozenset({"sink", "stage"})),
    "zaia_relay_responder_executions_ended_total": (
        "counter",
        frozenset({"source", "responder_id", "status"}),
    ),
}
RELAY_METRICS = {**DESIGN_METRICS, **EXTRA_METRICS}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})

_SELECTOR = re.compile(r"\b(zaia_relay_[a-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def queried_text() -> str:
    return DASHBOARD_FILE.read_text() + "\n" + RULES_FILE.read_text()


def queried_series() -> set[str]:
    return metric_names(queried_text())


def series_of(families: dict[str, str]) -> set[str]:
    """The series names a scrape has for each family of the given type."""
    names: set[str] = set()
    for family, kind in families.items():
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        elif kind == "summary":
            names |= {family, f"{family}_sum", f"{family}_count"}
        elif kind == "counter" and not family.endswith("_total"):
            names.add(f"{family}_total")  # OpenMetrics names the family without _total
        elif kind == "info":
            names.add(f"{family}_info")
        else:
            names.add(family)
    return names


def test_dashboard_and_rules_query_only_relay_metrics() -> None:
    known = series_of({name: kind for name, (kind, _) in RELAY_METRICS.items()})
    assert queried_series() - known == set()


def test_the_dashboard_charts_every_design_metric() -> None:
    charted = {family_of(name) for name in metric_names(DASHBOARD_FILE.read_text())}
    assert charted == set(RELAY_METRICS)


def test_label_matchers_name_labels_the_metrics_have() -> None:
    unknown = []
    # JSON escapes the quotes of PromQL strings; undo it so selectors read as in Grafana.
    text = queried_text().replace('\\"', '"')
    for series, matchers in _SELECTOR.findall(text):
        _, labels = RELAY_METRICS[family_of(series)]
        for label in _MATCHER.findall(matchers):
            if label not in labels | TARGET_LABELS | {"le"}:
                unknown.append(f"{series}: {label}")
    assert unknown == []


# --- against the relay's own exposition ----------------------------------------------


def exposed_families(exposition: str) -> dict[str, str]:
    """Family name -> type, from the `# TYPE` lines (present even before any sample)."""
    families = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families[name] = kind.strip()
    return families


def _missing_from(exposition: str) -> set[str]:
    return queried_series() - series_of(exposed_families(exposition))


def test_a_relay_metrics_registry_exports_every_queried_metric() -> None:
    registry = CollectorRegistry()
    RelayMetrics(registry)
    exposition = generate_latest(registry).decode()
    assert _missing_from(exposition) == set()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _relay_config(tmp_path: Path, *, sim_url: str, api_key: str, port: int) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(
        f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: {api_key}
    poll_interval: 300ms
    request_budget: 600/m
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: 127.0.0.1:{port}
log:
  format: json
responders:
  cb364d8f-6e9c-48ed-b241-ac405da66337: Sales Qualifier
rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [console]
sinks:
  console:
    type: console
    color: never
"""
    )
    return path


async def _scrape(url: str, *, timeout_s: float = 10.0) -> str:
    """GET /metrics, waiting for the server to listen (it starts alongside the pollers)."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout_s):
        while True:
            try:
                async with session.get(url, headers={"Accept": "text/plain"}) as response:
                    assert response.status == 200, await response.text()
                    assert response.content_type == "text/plain"
                    return await response.text()
            except aiohttp.ClientConnectionError:
                # Not listening yet: bounded by the timeout above.
                await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_running_relay_exports_every_queried_metric(tmp_path: Path) -> None:
    workspace = SimWorkspace(api_key="metrics-test-key", seed=7)
    for status in ("running", "completed", "failed", "cancelled"):
        workspace.create_execution(status=status, credits_used=12.5)
    port = _free_port()
    async with SimServer(workspace) as sim:
        config = _relay_config(tmp_path, sim_url=sim.url, api_key=workspace.api_key, port=port)
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done", count=2)
            try:
                exposition = await _scrape(f"http://127.0.0.1:{port}/metrics")
            except (TimeoutError, aiohttp.ClientConnectionError):
                pytest.fail(
                    f"the relay serves no /metrics on server.listen (127.0.0.1:{port}): "
                    "is the HTTP server wired into relay.app?\n" + relay.tail()
                )
            assert _missing_from(exposition) == set()
            # The metrics carry data, not just declarations.
            assert re.search(
                r'^zaia_relay_poll_cycles_total\{[^}]*outcome="ok"[^}]*\} [1-9]',
                exposition,
                re.MULTILINE,
            ), exposition
            # Configured responder names, set at start (labels in sorted order).
            assert (
                'zaia_relay_responder_info{name="Sales Qualifier",'
                'responder_id="cb364d8f-6e9c-48ed-b241-ac405da66337",source="prod"} 1.0'
            ) in exposition
            assert await relay.stop() == 0
        finally:
            await relay.close()
