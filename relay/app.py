"""Composition root: builds every part from `Settings`, and runs them.

Invariants:
- Everything is built here and nowhere else; modules below receive what they need.
- `run_daemon` runs named tasks in one TaskGroup: a poller per source, a delivery
  worker per sink, the HTTP server, housekeeping. A task that dies or returns
  unexpectedly ends the process with a non-zero exit (Kubernetes then restarts it).
- SIGHUP and `POST /-/reload` reload the configuration (`relay.reload`): a reload
  starts and stops named tasks through a `TaskSet`; `Runtime.apply` is the one place
  that rebuilds the parts a new configuration changes.
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
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from relay.assembly import Assembly, SourceParts
from relay.clock import utcnow
from relay.delivery import DeliveryPool, DeliveryWorker
from relay.domain.routes import routes_of
from relay.errors import RelayError, StoreError
from relay.http.common import CONTEXT
from relay.http.server import HttpServer, build_app
from relay.pipeline import CycleReport, SourceEngine, SourceLoop
from relay.reload import Reloader, ReloadPlan, TaskSet, positional_renames
from relay.settings import Settings, config_warnings
from relay.sinks import Sink
from relay.store import Store, open_store
from relay.telemetry import RelayMetrics

log = structlog.get_logger("relay.app")

PRUNE_INTERVAL_S = 3600.0
PRUNE_RETRY_S = 60.0


@dataclass
class Runtime:
    """The live objects of one relay process. `apply()` (a reload) replaces the parts
    a new configuration changes and nothing else: the store, metrics and HTTP server
    live as long as the process."""

    settings: Settings
    store: Store
    metrics: RelayMetrics
    engines: list[SourceEngine]
    pollers: list[SourceLoop]
    sinks: dict[str, Sink]
    deliveries: DeliveryPool
    http: HttpServer
    assembly: Assembly = field(repr=False)
    sources: dict[str, SourceParts] = field(default_factory=dict, repr=False)

    async def apply(self, new: Settings, plan: ReloadPlan, *, tasks: TaskSet) -> None:
        """Apply a valid, reloadable `plan` (see `relay.reload`). Sinks' workers are
        drained (the send in flight ends) and pollers stopped between cycles; what they
        owed stays in the store for the new ones."""
        grace_s = self.settings.server.shutdown_grace.total_seconds()
        # A sink is delivered by one worker per target (an Alertmanager's `urls`).
        old_targets = self.settings.targets()
        for name in (*plan.sinks_removed, *plan.sinks_changed):
            for target in old_targets.get(name, (name,)):
                worker = self.deliveries.remove(target)
                if worker is not None:
                    await tasks.stop(f"delivery:{target}", how=partial(_drain, worker, grace_s))
                if (sink := self.sinks.pop(target, None)) is not None:
                    await _shielded(sink.aclose)
        for name in (*plan.sources_removed, *plan.sources_restarted):
            parts = self.sources.pop(name, None)
            if parts is None:  # an earlier reload failed before it started this one
                continue
            async with parts.poller.cycling:  # between cycles, never inside one
                await tasks.stop(f"poller:{name}")
            await _shielded(parts.client.aclose)
            self.assembly.health.pop(name, None)
            if name in plan.sources_removed:
                self.metrics.remove_source(name)
        for target, targets in plan.targets_moved:
            # Old workers and planners are stopped: nothing writes under `target` now.
            moved = await self.store.retarget(target, targets)
            if moved:
                log.info("config.targets_moved", moved=moved, old=target, new=list(targets))
        self.settings = new
        self.assembly.reconfigure(new)
        for name, sink in self.assembly.sinks(
            new, (*plan.sinks_added, *plan.sinks_changed)
        ).items():
            self.sinks[name] = sink
            worker = self.deliveries.add(sink)
            tasks.start(f"delivery:{name}", worker.run())
        for index, source in enumerate(new.sources):
            # Added, restarted, or left stopped by an earlier reload that failed after
            # stopping it: every source the settings name runs after this one.
            if source.name not in self.sources:
                parts = self.assembly.source(new, source, index=index)
                self.sources[source.name] = parts
                tasks.start(f"poller:{source.name}", parts.loop.run())
        ordered = [self.sources[s.name] for s in new.sources]
        self.engines = [p.engine for p in ordered]
        self.pollers = [p.loop for p in ordered]


async def _drain(worker: DeliveryWorker, grace_s: float, task: asyncio.Task[None]) -> None:
    del task  # the worker's `run()` returns once drained
    await worker.drain(grace_s)


async def _shielded(close: Callable[[], Coroutine[Any, Any, None]]) -> None:
    await asyncio.shield(close())


@asynccontextmanager
async def build_runtime(
    settings: Settings, *, now: Callable[[], datetime] = utcnow
) -> AsyncIterator[Runtime]:
    """Open the store, one client per source and every sink; close them all on exit."""
    async with AsyncExitStack() as stack:
        store = open_store(settings.store.url)
        await store.open()
        stack.push_async_callback(_shielded, store.close)
        for target, targets in positional_renames(settings.targets()):
            if moved := await store.retarget(target, targets):
                log.info("outbox.targets_renamed", moved=moved, old=target, new=list(targets))
        metrics = RelayMetrics(
            CollectorRegistry(),
            sources=[s.name for s in settings.sources],
            sinks=[target for targets in settings.targets().values() for target in targets],
            routes=[route.id for route in routes_of(settings.routes)],
        )
        metrics.on_config_load(successful=True, at=now())
        assembly = Assembly(settings, store=store, metrics=metrics, now=now)
        sinks = assembly.sinks(settings, list(settings.sinks))
        sources: dict[str, SourceParts] = {}

        async def close_parts() -> None:
            # Whatever the last reload left running (the runtime holds these dicts).
            for sink in sinks.values():
                await _shielded(sink.aclose)
            for parts in sources.values():
                await _shielded(parts.client.aclose)

        stack.push_async_callback(close_parts)
        deliveries = assembly.delivery_pool(sinks)
        app = build_app(
            metrics=metrics,
            store=store,
            health=assembly.health,
            settings=settings,
            now=now,
            config_silences=assembly.silences,
            on_deliveries_retried=deliveries.wake,
        )
        assembly.http_context = app[CONTEXT]
        runtime = Runtime(
            settings=settings,
            store=store,
            metrics=metrics,
            engines=[],
            pollers=[],
            sinks=sinks,
            deliveries=deliveries,
            http=HttpServer(app, host=settings.server.host, port=settings.server.port),
            assembly=assembly,
            sources=sources,
        )
        for index, source in enumerate(settings.sources):
            runtime.sources[source.name] = assembly.source(settings, source, index=index)
        runtime.engines = [p.engine for p in runtime.sources.values()]
        runtime.pollers = [p.loop for p in runtime.sources.values()]
        yield runtime


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
    while True:
        retention = runtime.settings.store.retention  # a reload may change it
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
    reload: Callable[[], Settings] | None = None,
    on_reloaded: Callable[[Settings], None] | None = None,
) -> None:
    """Poll, alert, deliver and serve until SIGTERM/SIGINT. `extra_tasks` run alongside
    (the demo's simulated traffic) and stop with the pollers. With `reload` (loads the
    configuration again, raising ConfigError), SIGHUP and `POST /-/reload` apply a new
    configuration (`relay.reload`); `on_reloaded` then sees it (the CLI's log secrets)."""
    stop = asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = [signal.SIGTERM, signal.SIGINT]
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    if reload is not None:
        signals.append(signal.SIGHUP)
        loop.add_signal_handler(signal.SIGHUP, hup.set)
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
                tasks = TaskSet(group)
                reloader = None
                if reload is not None:
                    reloader = _reloader(runtime, tasks, load=reload, on_reloaded=on_reloaded)
                    runtime.assembly.http_context_reload(partial(reloader.reload, trigger="http"))
                    tasks.start("reload", _reload_on_signal(hup, reloader))
                for name, parts in runtime.sources.items():
                    tasks.start(f"poller:{name}", parts.loop.run())
                tasks.start("prune", _prune_forever(runtime))
                for name, factory in (extra_tasks or {}).items():
                    tasks.start(name, factory())
                for name, worker in runtime.deliveries.workers.items():
                    tasks.start(f"delivery:{name}", worker.run())
                tasks.start("http", runtime.http.serve())
                await _wait_for_stop(stop, tasks)
                if reloader is not None:
                    await reloader.close()
                await _shut_down(runtime, tasks=tasks)
            log.info("relay.stopped")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _reloader(
    runtime: Runtime,
    tasks: TaskSet,
    *,
    load: Callable[[], Settings],
    on_reloaded: Callable[[Settings], None] | None,
) -> Reloader:
    async def apply(new: Settings, plan: ReloadPlan) -> None:
        await runtime.apply(new, plan, tasks=tasks)
        if on_reloaded is not None:
            on_reloaded(new)

    def on_result(ok: bool, at: datetime) -> None:
        runtime.metrics.on_config_load(successful=ok, at=at)

    return Reloader(load, current=lambda: runtime.settings, apply=apply, on_result=on_result)


async def _reload_on_signal(hup: asyncio.Event, reloader: Reloader) -> None:
    """One reload per SIGHUP; signals during a reload fold into one more after it."""
    while True:
        await hup.wait()
        hup.clear()
        await reloader.reload(trigger="sighup")


async def _wait_for_stop(stop: asyncio.Event, tasks: TaskSet) -> None:
    """Return on the stop signal. The tasks run until stopped: one that ends otherwise
    is a bug, and exiting non-zero lets the supervisor restart the relay rather than run
    it half-dead. (One that raises ends the TaskGroup, which cancels this wait.)"""
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    ended = asyncio.create_task(tasks.ended.wait(), name="task-ended")
    try:
        await asyncio.wait([stopper, ended], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (stopper, ended):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    if tasks.ended_names:
        raise RelayError(f"task(s) {', '.join(tasks.ended_names)} ended unexpectedly")


async def _shut_down(runtime: Runtime, *, tasks: TaskSet) -> None:
    grace_s = runtime.settings.server.shutdown_grace.total_seconds()
    log.info("relay.stopping", grace_s=grace_s)
    tasks.forget_all()
    consumers = {name for name in tasks.names() if name.startswith("delivery:")}
    await asyncio.gather(
        *(tasks.stop(name) for name in tasks.names() if name not in consumers and name != "http")
    )
    await runtime.deliveries.drain(grace_s)
    await tasks.stop("http")
