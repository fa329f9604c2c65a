"""Composition root: builds every part from `Settings`, and runs them.

Invariants:
- Everything is built here and nowhere else; modules below receive what they need.
- `run_daemon` runs named tasks in one TaskGroup: a poller per source, a delivery
  worker per sink, the HTTP server, housekeeping. A task that dies or returns
  unexpectedly ends the process with a non-zero exit (Kubernetes then restarts it).
- Signals are handled here only. On SIGTERM/SIGINT polling stops first, so no new
  alerts are queued; deliveries in flight get `server.shutdown_grace` to finish; then
  the HTTP server stops and every resource is closed (under `asyncio.shield`).
  Whatever was not delivered stays in the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from relay.clock import utcnow
from relay.delivery import DeliveryPool, DeliveryWorker
from relay.domain.budget import RequestBudget
from relay.domain.routes import routes_of
from relay.domain.silences import Silence, config_silences
from relay.errors import RelayError, StoreError
from relay.http.server import HttpServer, build_app
from relay.pipeline import (
    DEFAULT_NESTINGS_BUDGET_S,
    AdaptivePoller,
    AlertPlanner,
    CycleReport,
    Poller,
    ScanLimits,
    SourceEngine,
    SourceLoop,
)
from relay.scrub import SecretScrubber
from relay.settings import Settings, SourceSettings, config_warnings
from relay.sinks import Sink, StoredMessageRefs, build_sinks
from relay.source import BudgetGate, ClientConfig, ZaiaClient
from relay.store import Store, open_store
from relay.telemetry import RelayMetrics
from relay.vocab import CycleOutcome

log = structlog.get_logger("relay.app")

PRUNE_INTERVAL_S = 3600.0
PRUNE_RETRY_S = 60.0


@dataclass
class Runtime:
    """The live objects of one relay process."""

    settings: Settings
    store: Store
    metrics: RelayMetrics
    engines: list[SourceEngine]
    pollers: list[SourceLoop]
    sinks: dict[str, Sink]
    deliveries: DeliveryPool
    http: HttpServer


async def _shielded(close: Callable[[], Coroutine[Any, Any, None]]) -> None:
    await asyncio.shield(close())


def _planner(
    settings: Settings,
    source: SourceSettings,
    *,
    silences: list[Silence],
    client: ZaiaClient,
    store: Store,
) -> AlertPlanner:
    return AlertPlanner(
        source=source.name,
        rules=settings.rules,
        alerts=settings.alerts,
        config_silences=silences,
        client=client,
        store=store,
        responder_names=settings.responders,
        routes=routes_of(settings.routes),
        intervals=settings.intervals(),
        targets=settings.targets(),
        # Following child executions is best effort: it may use a quarter of a cycle's
        # time at most, never the whole of it.
        nestings_budget_s=min(DEFAULT_NESTINGS_BUDGET_S, source.cycle_timeout.total_seconds() / 4),
    )


@asynccontextmanager
async def build_runtime(
    settings: Settings, *, now: Callable[[], datetime] = utcnow
) -> AsyncIterator[Runtime]:
    """Open the store, one client per source and every sink; close them all on exit."""
    async with AsyncExitStack() as stack:
        store = open_store(settings.store.url)
        await store.open()
        stack.push_async_callback(_shielded, store.close)
        metrics = RelayMetrics(
            CollectorRegistry(),
            sources=[s.name for s in settings.sources],
            sinks=[target for targets in settings.targets().values() for target in targets],
            routes=[route.id for route in routes_of(settings.routes)],
        )
        sinks = build_sinks(
            settings.sinks,
            now=now,
            slack_refs=lambda name: StoredMessageRefs(store, name, now=now),
        )
        for sink in sinks.values():
            stack.push_async_callback(_shielded, sink.aclose)
        silences = config_silences(settings.silences, intervals=settings.intervals())

        async def active_silences(at: datetime) -> list[Silence]:
            return [*silences, *await store.list_silences(now=at)]

        deliveries = DeliveryPool(
            sinks,
            outbox=store,
            now=now,
            on_result=metrics.on_delivery,
            silences=active_silences,
            scrubber=SecretScrubber.from_settings(settings),
            on_error=metrics.on_delivery_error,
        )

        def on_cycle(
            source: str, outcome: CycleOutcome, duration_s: float, report: CycleReport | None
        ) -> None:
            metrics.on_cycle(source, outcome, duration_s, report)
            if report is None:
                return
            metrics.alerts_queued(report.new_alerts, queued_at=now())
            for alert in report.resolved_alerts:
                metrics.alert(alert.rule, severity=alert.severity, state="resolved")
            if report.notifications:
                deliveries.wake({n.sink for n in report.notifications})

        engines: list[SourceEngine] = []
        pollers: list[SourceLoop] = []
        for index, source in enumerate(settings.sources):
            budget = source.budget_per_minute
            metrics.on_budget(source.name, budget_per_minute=budget)
            metrics.set_responder_names(source.name, settings.responders)
            gate = None
            if budget is not None:
                gate = BudgetGate(
                    # A second of margin: a request is counted when sent, not when the
                    # API receives it.
                    RequestBudget.per_minute(budget, margin_s=1.0),
                    source=source.name,
                    # A wait for a slot is part of a cycle: keep it well inside one.
                    max_wait_s=source.cycle_timeout.total_seconds() / 4,
                )
            client = ZaiaClient(
                ClientConfig.from_settings(source, index=index),
                on_request=metrics.request_counter(source.name),
                gate=gate,
            )
            stack.push_async_callback(_shielded, client.aclose)
            engine = SourceEngine(
                ScanLimits.from_settings(source),
                client=client,
                store=store,
                planner=_planner(settings, source, silences=silences, client=client, store=store),
                now=now,
            )
            engines.append(engine)
            poller = Poller(
                engine,
                interval_s=source.poll_interval.total_seconds(),
                cycle_timeout_s=source.cycle_timeout.total_seconds(),
                on_cycle=on_cycle,
                lead=partial(store.try_lead, source.name),
            )
            poller.health.budget_per_minute = budget
            if source.polling == "adaptive" and gate is not None:
                pollers.append(AdaptivePoller(poller, engine, gate=gate, on_plan=metrics.on_plan))
            else:
                pollers.append(poller)
        app = build_app(
            metrics=metrics,
            store=store,
            health={p.health.source: p.health for p in pollers},
            settings=settings,
            now=now,
            config_silences=silences,
            on_deliveries_retried=deliveries.wake,
        )
        http = HttpServer(app, host=settings.server.host, port=settings.server.port)
        yield Runtime(
            settings=settings,
            store=store,
            metrics=metrics,
            engines=engines,
            pollers=pollers,
            sinks=sinks,
            deliveries=deliveries,
            http=http,
        )


async def run_once(settings: Settings, *, dry_run: bool) -> list[CycleReport]:
    """One cycle per source; with `dry_run` nothing is persisted or sent. Notifications a
    real run queues are delivered before returning (within the shutdown grace)."""
    async with build_runtime(settings) as runtime:
        reports = [await engine.run_cycle(commit=not dry_run) for engine in runtime.engines]
        if not dry_run and any(r.notifications for r in reports):
            await _deliver_pending(runtime)
        return reports


async def _deliver_pending(runtime: Runtime) -> None:
    """Send what the cycle queued, waiting for digests and rate limits at most the
    shutdown grace; anything left stays in the outbox for the daemon."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.settings.server.shutdown_grace.total_seconds()

    async def flush(worker: DeliveryWorker) -> None:
        while True:
            result = await worker.step()
            if result.claimed:
                continue
            if result.next_wake_at is None:
                return
            wait_s = (result.next_wake_at - utcnow()).total_seconds()
            if loop.time() + wait_s > deadline:
                log.info("once.left_in_outbox", sink=worker.sink.name)
                return
            await asyncio.sleep(max(0.0, wait_s))

    await asyncio.gather(*(flush(w) for w in runtime.deliveries.workers.values()))


async def _prune_forever(runtime: Runtime) -> None:
    retention = runtime.settings.store.retention
    while True:
        try:
            result = await runtime.store.prune(before=utcnow() - retention)
        except StoreError as exc:
            # Housekeeping can wait (a backup or a CLI command may hold the write lock);
            # it must never take the relay down.
            log.warning("store.prune_failed", error=str(exc), retry_in_s=PRUNE_RETRY_S)
            await asyncio.sleep(PRUNE_RETRY_S)
            continue
        log.info(
            "store.pruned", states=result.states_deleted, transitions=result.transitions_deleted
        )
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def _release_own_leases(store: Store) -> None:
    """Deliver at once what a killed predecessor had in flight, instead of after its
    lease (SQLite only: one daemon per file; the CLI never releases)."""
    released = await store.release_own_leases(now=utcnow())
    if released:
        log.info("store.leases_released", count=released)


async def run_daemon(
    settings: Settings,
    *,
    extra_tasks: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
) -> None:
    """Poll, alert, deliver and serve until SIGTERM/SIGINT. `extra_tasks` run alongside
    (the demo's simulated traffic) and stop with the pollers."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with build_runtime(settings) as runtime:
            await _release_own_leases(runtime.store)
            await runtime.http.start()
            # What start-up built lives as long as the process: moved out of the
            # collector's generations, it is not rescanned by every full collection
            # (each page read allocates enough to trigger them).
            gc.collect()  # start-up's garbage is freed, not frozen
            gc.freeze()
            log.info(
                "relay.started",
                sources=[e.source for e in runtime.engines],
                sinks=list(runtime.sinks),
                http=runtime.http.url,
            )
            for warning in config_warnings(settings):
                # What check-config warns of: the relay runs, perhaps not as meant.
                log.warning("config.warning", problem=warning)
            async with asyncio.TaskGroup() as group:
                producers = [
                    group.create_task(poller.run(), name=f"poller:{poller.health.source}")
                    for poller in runtime.pollers
                ]
                producers.append(group.create_task(_prune_forever(runtime), name="prune"))
                for name, factory in (extra_tasks or {}).items():
                    producers.append(group.create_task(factory(), name=name))
                consumers = [
                    group.create_task(worker.run(), name=f"delivery:{name}")
                    for name, worker in runtime.deliveries.workers.items()
                ]
                http = group.create_task(runtime.http.serve(), name="http")
                await _wait_for_stop(stop, [*producers, *consumers, http])
                await _shut_down(runtime, producers=producers, http=http)
            log.info("relay.stopped")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _wait_for_stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Return on the stop signal. These tasks run until cancelled: one that returns is a
    bug, and exiting non-zero lets the supervisor restart the relay rather than run it
    half-dead. (One that raises ends the TaskGroup, which cancels this wait.)"""
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
    ended = [task.get_name() for task in done if task is not stopper]
    if ended:
        raise RelayError(f"task(s) {', '.join(ended)} ended unexpectedly")


async def _shut_down(
    runtime: Runtime, *, producers: list[asyncio.Task[None]], http: asyncio.Task[None]
) -> None:
    grace_s = runtime.settings.server.shutdown_grace.total_seconds()
    log.info("relay.stopping", grace_s=grace_s)
    for task in producers:
        task.cancel()
    await asyncio.gather(*producers, return_exceptions=True)
    await runtime.deliveries.drain(grace_s)
    http.cancel()
