"""Composition root: builds clients, engines and pollers from `Settings`, and runs them.

Invariants:
- Everything is built here and nowhere else; modules below receive what they need.
- `run_daemon` runs one named task per source in a TaskGroup, plus housekeeping; a task
  that dies unexpectedly ends the group, and the error propagates so the process exits
  non-zero (Kubernetes then restarts it).
- Signals are handled in one place: SIGTERM/SIGINT set the stop event, the tasks are
  cancelled and resources are closed under `asyncio.shield`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from relay.engine import CycleReport, ScanLimits, SourceEngine
from relay.errors import RelayError
from relay.poller import OnCycle, Poller
from relay.settings import Settings, SourceSettings
from relay.source.client import ClientConfig, ZaiaClient
from relay.store import Store, open_store

log = structlog.get_logger("relay.app")

PRUNE_INTERVAL_S = 3600.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """The live objects of one relay process."""

    settings: Settings
    store: Store
    engines: list[SourceEngine]
    pollers: list[Poller]


def _engine_for(
    source: SourceSettings, index: int, *, store: Store, now: Callable[[], datetime]
) -> tuple[SourceEngine, ZaiaClient]:
    client = ZaiaClient(ClientConfig.from_settings(source, index=index))
    engine = SourceEngine(ScanLimits.from_settings(source), client=client, store=store, now=now)
    return engine, client


async def _shielded_close(client: ZaiaClient) -> None:
    await asyncio.shield(client.aclose())


@asynccontextmanager
async def build_runtime(
    settings: Settings,
    *,
    on_cycle: OnCycle | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> AsyncIterator[Runtime]:
    """Open the store and one client per source; close them all on exit."""
    async with AsyncExitStack() as stack:
        store = open_store(settings.store.url)
        await store.open()
        stack.push_async_callback(lambda: asyncio.shield(store.close()))
        engines: list[SourceEngine] = []
        pollers: list[Poller] = []
        for index, source in enumerate(settings.sources):
            engine, client = _engine_for(source, index, store=store, now=now)
            stack.push_async_callback(_shielded_close, client)
            engines.append(engine)
            pollers.append(
                Poller(
                    engine,
                    interval_s=source.poll_interval.total_seconds(),
                    cycle_timeout_s=source.cycle_timeout.total_seconds(),
                    on_cycle=on_cycle,
                )
            )
        yield Runtime(settings=settings, store=store, engines=engines, pollers=pollers)


async def run_once(settings: Settings, *, dry_run: bool) -> list[CycleReport]:
    """One cycle per source; with `dry_run` nothing is persisted."""
    async with build_runtime(settings) as runtime:
        return [await engine.run_cycle(commit=not dry_run) for engine in runtime.engines]


async def _prune_forever(runtime: Runtime) -> None:
    retention = runtime.settings.store.retention
    while True:
        result = await runtime.store.prune(before=_utcnow() - retention)
        log.info(
            "store.pruned", states=result.states_deleted, transitions=result.transitions_deleted
        )
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def run_daemon(
    settings: Settings,
    *,
    extra_tasks: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
) -> None:
    """Poll every source until SIGTERM/SIGINT. `extra_tasks` run alongside (the demo's
    simulated traffic) and are stopped with the rest."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with build_runtime(settings) as runtime:
            log.info("relay.started", sources=[e.source for e in runtime.engines])
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(poller.run(), name=f"poller:{poller.health.source}")
                    for poller in runtime.pollers
                ]
                tasks.append(group.create_task(_prune_forever(runtime), name="prune"))
                for name, factory in (extra_tasks or {}).items():
                    tasks.append(group.create_task(factory(), name=name))
                await _wait_for_stop(stop, tasks)
            log.info("relay.stopped")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _wait_for_stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Return on the stop signal after cancelling the tasks; a task that ends on its own
    (it should not) is reported and its error re-raised through the TaskGroup."""
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
    log.info("relay.stopping")
    for task in tasks:
        task.cancel()
    ended = [task.get_name() for task in done if task is not stopper]
    if ended:
        # These tasks run until cancelled; one that returned is a bug, and exiting
        # non-zero lets the supervisor restart the relay rather than run it half-dead.
        raise RelayError(f"task(s) {', '.join(ended)} ended unexpectedly")
