"""Shared fixtures: a seeded simulated Zaia workspace, its HTTP server, and a guard that
fails any async test leaking asyncio tasks (as kopf's test suite does)."""

from __future__ import annotations

import asyncio
import compileall
import inspect
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

import relay
from relay.sim import ManualClock, SimServer, SimWorkspace

SIM_API_KEY = "sim-test-key"


def pytest_sessionstart(session: pytest.Session) -> None:
    # Dozens of tests start `python -m relay`. Where PYTHONDONTWRITEBYTECODE is set, each
    # would compile the whole package from source again (~0.2 s of CPU); compiled once
    # here (a no-op when up to date), they load the bytecode instead.
    del session
    compileall.compile_dir(Path(relay.__file__).parent, quiet=1)


@pytest.fixture
def sim_clock() -> ManualClock:
    """The clock of `sim_workspace`: 2026-03-02T09:00:00Z until a test advances it."""
    return ManualClock()


@pytest.fixture
def sim_workspace(sim_clock: ManualClock) -> SimWorkspace:
    """A few hundred executions over three days: dozens of each kind and status, some
    with children (and grandchildren), a few purged, plus one follow-up chat message."""
    workspace = SimWorkspace(api_key=SIM_API_KEY, seed=20260302, now=sim_clock)
    workspace.seed_history(
        300,
        running=30,
        failed_ratio=0.2,
        cancelled_ratio=0.12,
        child_ratio=0.25,
        purged=8,
    )
    # Squads are rare in a realistic mix: make sure every kind meets every status.
    minutes = 0
    for kind in ("agent", "squad", "workflow"):
        for status in ("running", "completed", "failed", "cancelled"):
            for _ in range(2):
                minutes += 1
                workspace.create_execution(
                    kind=kind,
                    status=status,
                    credits_used=minutes * 1.5,
                    created_at=sim_clock() - timedelta(minutes=90 - minutes),
                )
    workspace.add_follow_up_message()
    return workspace


@pytest.fixture
async def sim_server(sim_workspace: SimWorkspace) -> AsyncIterator[SimServer]:
    """`sim_workspace` served on 127.0.0.1 (random port) with the `/_sim/` control API."""
    async with SimServer(sim_workspace) as server:
        yield server


@pytest.fixture
async def _asyncio_task_leak_check() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    leaked: set[asyncio.Task[object]] = set()
    # Tasks cancelled during teardown may need a few loop iterations to unwind.
    for _ in range(20):
        current = asyncio.current_task()
        leaked = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
        if not leaked:
            return
        await asyncio.sleep(0)
    for task in leaked:
        task.cancel()
    await asyncio.gather(*leaked, return_exceptions=True)
    names = sorted(f"{task.get_name()} ({task.get_coro()!r})" for task in leaked)
    pytest.fail(f"the test left asyncio tasks running: {names}")


@pytest.fixture(autouse=True)
def _no_leaked_asyncio_tasks(request: pytest.FixtureRequest) -> None:
    # Only coroutine tests run in an event loop; sync tests are left alone. Requested
    # first, the check is torn down last, after every fixture of the test has cleaned up.
    test = getattr(request.node, "obj", None)
    if test is not None and inspect.iscoroutinefunction(test):
        request.getfixturevalue("_asyncio_task_leak_check")
