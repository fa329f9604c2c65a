"""A relay HTTP server on loopback over a real SQLite store, for the server tests.

The settings carry a secret in every place the configuration allows one (source API
keys, the admin token, Slack and webhook URLs, the signing secret, custom headers), so
tests can check that no response ever contains any of them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry

from relay.domain.alerts import (
    Alert,
    ExecutionFacts,
    FailureCause,
    Notification,
    execution_alert_id,
)
from relay.domain.state import SourceCursor
from relay.http.server import HttpServer, build_app
from relay.pipeline.poller import SourceHealth
from relay.settings import Settings
from relay.sim import ManualClock
from relay.store import CycleResult, SqliteStore
from relay.telemetry.metrics import RelayMetrics

SOURCE_KEY = "zk_live_SOURCEKEY_prod_6f1d2e3c4b5a69788796a5b4"
SOURCE_KEY_2 = "zk_live_SOURCEKEY_stag_0a1b2c3d4e5f60718293a4b5"
ADMIN_TOKEN = "admin-TOKEN-9f8e7d6c5b4a39281706f5e4"
READ_TOKEN = "read-TOKEN-1a2b3c4d5e6f708192a3b4c5"
SLACK_URL = "https://hooks.slack.example/services/T0001/B0001/SLACKSECRETabcdef123456"
WEBHOOK_URL = "https://hooks.example.com/zaia?token=WEBHOOKURLSECRET_77aa88bb"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"SIGNINGSECRET-0123456789abcdef").decode()
HEADER_SECRET = "HEADERSECRET-5566778899aabbcc"
SECRETS = (
    SOURCE_KEY,
    SOURCE_KEY_2,
    ADMIN_TOKEN,
    READ_TOKEN,
    SLACK_URL,
    WEBHOOK_URL,
    WEBHOOK_SECRET,
    HEADER_SECRET,
    "SLACKSECRETabcdef123456",
    "WEBHOOKURLSECRET_77aa88bb",
)

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_settings(
    tmp_path: Path,
    *,
    admin_token: str | None = ADMIN_TOKEN,
    sinks: bool = True,
    server: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
) -> Settings:
    """`more`: top-level sections that replace (or add to) the rig's own."""
    raw: dict[str, Any] = {
        "sources": [
            {"name": "prod", "api_key": SOURCE_KEY, "poll_interval": "15s"},
            {"name": "staging", "api_key": SOURCE_KEY_2, "poll_interval": "1m"},
        ],
        "store": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "server": {"listen": "127.0.0.1:0", "admin_token": admin_token, **(server or {})},
        "rules": [
            {
                "name": "execution-failed",
                "when": {"status": ["failed"]},
                "severity": "critical",
                "sinks": ["oncall"] if sinks else [],
            },
            {
                "name": "credit-burn",
                "window": "1h",
                "when": {"credits_sum": {"gt": 10000}},
                "severity": "warning",
                "sinks": ["finops"] if sinks else [],
            },
        ],
        "sinks": {
            "oncall": {"type": "slack", "webhook_url": SLACK_URL},
            "finops": {
                "type": "webhook",
                "url": WEBHOOK_URL,
                "secret": WEBHOOK_SECRET,
                "headers": {"X-Api-Token": HEADER_SECRET},
            },
        }
        if sinks
        else {},
        "silences": [
            {
                "matchers": {"rule": "credit-burn"},
                "starts": "2026-03-01T00:00:00Z",
                "ends": "2026-03-09T00:00:00Z",
                "comment": "finance freeze <b>week</b>",
            }
        ],
    }
    return Settings.model_validate(raw | dict(more or {}))


def make_alert(
    n: int,
    *,
    rule: str = "execution-failed",
    source: str = "prod",
    state: str = "firing",
    severity: str = "critical",
    at: datetime = START,
    summary: str | None = None,
    excerpt: str = "tool exploded",
) -> Alert:
    execution_id = f"exec-{n:04d}"
    started = at - timedelta(minutes=3)
    return Alert(
        id=execution_alert_id(rule=rule, source=source, execution_id=execution_id),
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        source=source,
        summary=summary or f"Agent execution {execution_id} failed",
        description=f"Execution {execution_id} failed at step search.\nerror: {excerpt}",
        started_at=at,
        labels={"rule": rule, "severity": severity, "source": source, "type": "agent"},
        execution=ExecutionFacts(
            id=execution_id,
            kind="agent",
            status="failed",
            responder_id="resp-1",
            agent_id="agent-1",
            workflow_id=None,
            parent_id=None,
            origin_type="api",
            credits_used=12.5,
            started_at=started,
            ended_at=at - timedelta(seconds=5),
        ),
        cause=FailureCause(step_label="search", step_type="tool-call", error_excerpt=excerpt),
        link=f"https://app.zaia.example/executions/{execution_id}",
    )


async def commit_alerts(
    store: SqliteStore,
    alerts: Sequence[Alert],
    *,
    at: datetime,
    sinks: Sequence[str] = ("oncall",),
    source: str = "prod",
) -> None:
    """Store alerts (and a firing notification per sink) as one cycle would."""
    notifications = [
        Notification.about(alert, sink=sink, kind="firing", created_at=at)
        for alert in alerts
        for sink in sinks
    ]
    await store.commit_cycle(
        CycleResult(
            source=source,
            states=[],
            transitions=[],
            cursor=SourceCursor(source=source, first_poll_done=True, last_success_at=at),
            alerts=list(alerts),
            notifications=notifications,
        )
    )


@dataclass
class HttpRig:
    settings: Settings
    store: SqliteStore
    metrics: RelayMetrics
    health: dict[str, SourceHealth]
    clock: ManualClock
    server: HttpServer
    client: httpx.AsyncClient
    retried: list[int] = field(default_factory=list)
    app: web.Application | None = None

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def mark_polled(self, source: str = "prod", *, running: int = 0) -> None:
        health = self.health[source]
        health.last_success_at = self.clock()
        health.last_attempt_at = self.clock()
        health.running = running
        health.consecutive_failures = 0
        health.unauthorized = False
        health.last_error = None


@asynccontextmanager
async def http_rig(
    tmp_path: Path,
    *,
    admin_token: str | None = ADMIN_TOKEN,
    sinks: bool = True,
    server: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
) -> AsyncIterator[HttpRig]:
    """`server`: more `server.*` settings (read_token, allowed_hosts, ...); `more`: top-level
    sections replacing the rig's own (`silences`, `time_intervals`, ...)."""
    settings = make_settings(
        tmp_path, admin_token=admin_token, sinks=sinks, server=server, more=more
    )
    clock = ManualClock(START)
    registry = CollectorRegistry()
    metrics = RelayMetrics(
        registry,
        sources=[s.name for s in settings.sources],
        sinks=list(settings.sinks),
        now=clock,
    )
    health = {
        s.name: SourceHealth(source=s.name, interval_s=s.poll_interval.total_seconds())
        for s in settings.sources
    }
    retried: list[int] = []
    async with SqliteStore(tmp_path / "state.db") as store:
        app = build_app(
            metrics=metrics,
            store=store,
            health=health,
            settings=settings,
            now=clock,
            on_deliveries_retried=lambda: retried.append(1),
        )
        async with (
            HttpServer(app, host="127.0.0.1", port=0) as server,
            httpx.AsyncClient(base_url=server.url, timeout=10.0) as client,
        ):
            yield HttpRig(settings, store, metrics, health, clock, server, client, retried, app)
