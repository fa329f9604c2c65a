"""How fast the status page and an alert's page render over a store with a day of history.

    .venv/bin/python bench/status_page.py [--executions 100000] [--responders 10]
                                          [--alerts 200] [--gets 20] [--postgres]

Fills a SQLite store in a temporary directory (`--postgres`: a fresh schema of
RELAY_TEST_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/test, dropped
afterwards) with `--executions` executions that ended over the last day, spread over
`--responders` responders of two sources (durations exponential around 30 s, 5% failed),
and `--alerts` alerts (a quarter firing) with a notification each. Then serves the real
app (`relay.http.server.build_app`, the shipped defaults) on loopback and measures, from
a client on the same machine:
- the first render of `/`, which waits for the day's statistics (no target: later renders
  serve them kept, refreshed in the background once a minute);
- `--gets` (20) renders of `/` after it: median and p95 (target <= 200 ms each);
- `--gets` renders of one alert's page `/alerts/{id}`: median and p95 (target <= 200 ms);
- one read of each window's statistics from the store alone (no target);
- with the app's clock a minute on: the render that finds the day's figures stale (it
  serves them and starts a re-read in the background) and the one right after it, which
  waits for the store while that re-read runs (no target: once a minute at most).
Each figure is printed beside its target with `ok` or `FAIL`; the exit code is 1 when any
target is missed. The default run takes about half a minute (most of it filling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from relay.domain.alerts import Alert, ExecutionFacts, Notification, execution_alert_id
from relay.domain.exec_stats import nearest_rank
from relay.domain.state import SourceCursor, TrackedExecution
from relay.http.server import HttpServer, build_app
from relay.http.status_stats import DAY_REFRESH_S
from relay.pipeline.poller import SourceHealth
from relay.settings import Settings
from relay.store import CycleResult, PostgresStore, SqliteStore, Store
from relay.telemetry.logs import configure_logging
from relay.telemetry.metrics import RelayMetrics

TARGET_MS = 200.0
SOURCES = ("prod", "staging")
PG_URL = os.environ.get("RELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def responder_names(count: int) -> dict[str, str]:
    names = {f"resp-{n}": f"Agent {n}" for n in range(count)}
    names["resp-0"] = 'Sales <script>alert("x")</script> "Qualifier"'  # escaped on the page
    return names


def executions(count: int, *, responders: int, now: datetime) -> list[TrackedExecution]:
    rnd = random.Random(16)
    states = []
    for n in range(count):
        ended = now - timedelta(seconds=rnd.uniform(0, 86_400))
        started = ended - timedelta(seconds=rnd.expovariate(1 / 30))
        states.append(
            TrackedExecution(
                source=SOURCES[n % len(SOURCES)],
                id=f"exec-{n:07d}",
                status="failed" if rnd.random() < 0.05 else "completed",
                credits_used=round(rnd.uniform(0, 20), 2),
                kind="agent",
                responder_id=f"resp-{rnd.randrange(responders)}",
                parent_id=None,
                agent_id=None,
                workflow_id=None,
                created_at=started,
                updated_at=ended,
                started_at=started,
                ended_at=ended,
                is_purged=False,
                last_seen_at=ended,
            )
        )
    return states


def alert(n: int, *, now: datetime, names: dict[str, str]) -> Alert:
    execution_id = f"exec-{n:07d}"
    responder = f"resp-{n % len(names)}"
    at = now - timedelta(minutes=n)
    return Alert(
        id=execution_alert_id(rule="execution-failed", source="prod", execution_id=execution_id),
        rule="execution-failed",
        severity="critical",
        state="firing" if n % 4 == 0 else "resolved",
        source="prod",
        summary=f"{names[responder]} failed (execution {execution_id})",
        description="The execution failed at step 'Look up the customer'.",
        started_at=at,
        labels={"rule": "execution-failed", "responder": names[responder], "team": "<b>ops</b>"},
        execution=ExecutionFacts(
            id=execution_id,
            kind="agent",
            status="failed",
            responder_id=responder,
            agent_id=None,
            workflow_id=None,
            parent_id=None,
            origin_type="api",
            credits_used=12.5,
            started_at=at - timedelta(seconds=40),
            ended_at=at,
        ),
        link=f"https://app.zaia.example/executions/{execution_id}",
        annotations={"runbook_url": "https://wiki.example/runbooks/agents"},
    )


async def fill(store: Store, args: argparse.Namespace, *, now: datetime) -> str:
    """Executions and alerts as cycles would commit them; returns a firing alert's id."""
    names = responder_names(args.responders)
    states = executions(args.executions, responders=args.responders, now=now)
    for source in SOURCES:
        mine = [s for s in states if s.source == source]
        for start in range(0, len(mine), 10_000):
            cursor = SourceCursor(source=source, first_poll_done=True, last_success_at=now)
            await store.commit_cycle(
                CycleResult(
                    source, states=mine[start : start + 10_000], transitions=[], cursor=cursor
                )
            )
    alerts = [alert(n, now=now, names=names) for n in range(args.alerts)]
    notifications = [
        Notification.about(a, sink="oncall", kind="firing", created_at=now) for a in alerts
    ]
    cursor = SourceCursor(source="prod", first_poll_done=True, last_success_at=now)
    await store.commit_cycle(
        CycleResult(
            "prod",
            states=[],
            transitions=[],
            cursor=cursor,
            alerts=alerts,
            notifications=notifications,
        )
    )
    return alerts[0].id


def settings_for(url: str, *, responders: int) -> Settings:
    return Settings.model_validate(
        {
            "sources": [{"name": s, "api_key": f"zk_bench_{s}"} for s in SOURCES],
            "store": {"url": url},
            "server": {"listen": "127.0.0.1:0"},
            "sinks": {"oncall": {"type": "webhook", "url": "https://hooks.example/zaia"}},
            "responders": responder_names(responders),
        }
    )


@contextlib.asynccontextmanager
async def opened_store(args: argparse.Namespace, folder: Path) -> AsyncIterator[tuple[Store, str]]:
    if not args.postgres:
        async with SqliteStore(folder / "state.db") as store:
            yield store, f"sqlite:///{folder / 'state.db'}"
        return
    import asyncpg  # type: ignore[import-untyped]

    admin = await asyncpg.connect(PG_URL, timeout=5)
    schema = f"relay_bench_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}search_path={schema}"
    try:
        async with PostgresStore(url) as store:
            yield store, url
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def timed_get(client: httpx.AsyncClient, path: str) -> float:
    start = time.perf_counter()
    response = await client.get(path)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if response.status_code != 200 or "<script>" in response.text:
        raise SystemExit(f"GET {path}: {response.status_code}, or an unescaped <script>")
    return elapsed_ms


def p95(values: list[float]) -> float:
    return nearest_rank(values) or 0.0


async def run(args: argparse.Namespace) -> list[tuple[str, float, float | None]]:
    now = datetime.now(UTC)
    figures: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory() as folder:
        async with opened_store(args, Path(folder)) as (store, url):
            start = time.perf_counter()
            alert_id = await fill(store, args, now=now)
            print(
                f"filled {args.executions} executions and {args.alerts} alerts "
                f"in {time.perf_counter() - start:.1f} s"
            )
            for bucket_s, buckets, name in ((300, 12, "hour"), (3600, 24, "day")):
                start = time.perf_counter()
                await store.execution_stats(
                    now=datetime.now(UTC), bucket_s=bucket_s, buckets=buckets
                )
                figures.append(
                    (f"store read, last {name} (ms)", (time.perf_counter() - start) * 1000, None)
                )
            settings = settings_for(url, responders=args.responders)
            health = {s: SourceHealth(source=s, interval_s=15.0) for s in SOURCES}
            for h in health.values():
                h.last_success_at = h.last_attempt_at = datetime.now(UTC)
            metrics = RelayMetrics(CollectorRegistry(), sources=list(SOURCES), sinks=["oncall"])
            # The app's clock, which the bench moves a minute on to make the day's figures stale.
            skew = [timedelta(0)]
            app = build_app(
                metrics=metrics,
                store=store,
                health=health,
                settings=settings,
                now=lambda: datetime.now(UTC) + skew[0],
            )
            async with (
                HttpServer(app, host="127.0.0.1", port=0) as server,
                httpx.AsyncClient(base_url=server.url, timeout=30.0) as client,
            ):
                figures.append(("first render of / (ms)", await timed_get(client, "/"), None))
                pages = [await timed_get(client, "/") for _ in range(args.gets)]
                figures.append(("render of /, median (ms)", statistics.median(pages), TARGET_MS))
                figures.append(("render of /, p95 (ms)", p95(pages), TARGET_MS))
                path = f"/alerts/{alert_id}"
                alerts = [await timed_get(client, path) for _ in range(args.gets)]
                figures.append(("alert page, median (ms)", statistics.median(alerts), TARGET_MS))
                figures.append(("alert page, p95 (ms)", p95(alerts), TARGET_MS))
                # A minute later the day is stale: that render starts its re-read in the
                # background, and the next one waits for the store while it runs.
                skew[0] = timedelta(seconds=DAY_REFRESH_S + 1)
                figures.append(
                    ("render starting a day re-read (ms)", await timed_get(client, "/"), None)
                )
                figures.append(
                    ("render during the re-read (ms)", await timed_get(client, "/"), None)
                )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--responders", type=int, default=10)
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--gets", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    configure_logging(level="warning", fmt="console")
    print(
        f"store: {'postgresql' if args.postgres else 'sqlite'}; executions {args.executions}, "
        f"responders {args.responders}, alerts {args.alerts}, gets {args.gets}"
    )
    figures = asyncio.run(run(args))
    failed = False
    for name, value, target in figures:
        if target is None:
            print(f"{name:34} {value:8.1f}   (no target)")
            continue
        ok = value <= target
        failed |= not ok
        print(f"{name:34} {value:8.1f}   target <= {target:g}  {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
