"""The cycle engine against the simulator over loopback HTTP and a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from structlog.testing import capture_logs

from relay.domain.state import Transition
from relay.pipeline.cycle import ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.sim import ManualClock, SimServer, SimWorkspace
from relay.source import ClientConfig, ZaiaClient
from relay.store.sqlite import SqliteStore

KEY = "engine-test-key"


@dataclass
class Rig:
    workspace: SimWorkspace
    clock: ManualClock
    store: SqliteStore
    client: ZaiaClient
    requests: list[str]

    def engine(self, **limits: object) -> SourceEngine:
        return SourceEngine(
            ScanLimits(source="prod", **limits),  # type: ignore[arg-type]
            client=self.client,
            store=self.store,
            now=self.clock,
        )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ManualClock()
    workspace = SimWorkspace(api_key=KEY, seed=7, now=clock)
    requests: list[str] = []
    async with SimServer(workspace) as server, SqliteStore(tmp_path / "state.db") as store:
        config = ClientConfig(name="prod", base_url=server.url, api_key=KEY, page_size=10)
        async with ZaiaClient(
            config, on_request=lambda endpoint, _: requests.append(endpoint)
        ) as client:
            yield Rig(workspace, clock, store, client, requests)


def status_changes(transitions: tuple[Transition, ...]) -> set[tuple[str, str, str]]:
    return {
        (t.execution_id, t.from_status, t.to_status)
        for t in transitions
        if t.kind == "status" and t.alertable
    }


async def test_first_poll_records_a_baseline_without_alertable_transitions(rig: Rig) -> None:
    rig.workspace.seed_history(40, running=5)
    report = await rig.engine(page_size=10).run_cycle()
    assert report.first_poll
    assert report.transitions, "the baseline still records what it saw"
    assert report.alertable == ()
    assert await rig.store.state_count(source="prod") == len(rig.workspace)
    assert report.running == rig.workspace.counts_by_status().get("running", 0)


async def test_a_fixed_first_start_cut_short_by_max_pages_says_so(rig: Rig) -> None:
    rig.workspace.seed_history(60, running=30)
    with capture_logs() as logs:
        await rig.engine(page_size=10, max_pages=2).run_cycle()
        await rig.engine(page_size=10, max_pages=20).run_cycle()  # not a first start
    warnings = [e for e in logs if e["event"] == "poll.first_start_truncated"]
    assert len(warnings) == 1
    assert warnings[0]["pages"] == 2
    assert "max_pages" in warnings[0]["hint"]


async def test_a_change_another_writer_recorded_is_followed(rig: Rig) -> None:
    # The daemon's engine remembers the store between cycles; `zaia-relay once` (another
    # engine on the same store) records a new running execution meanwhile.
    rig.workspace.seed_history(5)
    daemon = rig.engine(page_size=10, max_pages=1)
    await daemon.run_cycle()
    rig.clock.advance(seconds=1)
    late = rig.workspace.create_execution()
    await rig.engine(page_size=10, max_pages=1).run_cycle()
    rig.clock.advance(seconds=1)
    for _ in range(25):  # it slides below what the daemon's cycles read...
        rig.workspace.create_execution(status="completed")
    rig.workspace.set_status(late, "failed", error="step failed")  # ...and fails there
    report = await daemon.run_cycle()
    assert (late, "running", "failed") in status_changes(report.transitions)


async def test_steady_state_alerts_each_change_once_and_reads_little(rig: Rig) -> None:
    rig.workspace.seed_history(60, running=6, child_ratio=0.0)
    engine = rig.engine(page_size=10)
    await engine.run_cycle()
    running = rig.workspace.execution_ids(status="running")
    rig.clock.advance(seconds=15)
    rig.workspace.set_status(running[0], "failed", error="tool exploded")
    rig.workspace.set_status(running[1], "completed")
    born_failed = rig.workspace.create_execution(status="failed", error="bad input")

    rig.requests.clear()
    report = await engine.run_cycle()
    assert status_changes(report.transitions) == {
        (running[0], "running", "failed"),
        (running[1], "running", "completed"),
        (born_failed, "unknown", "failed"),
    }
    assert not report.first_poll

    rig.clock.advance(seconds=15)
    rig.requests.clear()
    quiet = await engine.run_cycle()
    assert quiet.transitions == ()
    assert rig.requests.count("get") == 0
    assert quiet.running == len(running) - 2


async def test_a_dry_run_persists_nothing(rig: Rig) -> None:
    rig.workspace.seed_history(20, running=2)
    engine = rig.engine()
    await engine.run_cycle()
    target = rig.workspace.execution_ids(status="running")[0]
    rig.workspace.set_status(target, "failed")
    dry = await engine.run_cycle(commit=False)
    assert (target, "running", "failed") in status_changes(dry.transitions)
    again = await engine.run_cycle()
    assert (target, "running", "failed") in status_changes(again.transitions)
    assert await rig.store.transition_count(source="prod") > 0
    after = await engine.run_cycle()
    assert status_changes(after.transitions) == set()


async def test_backfill_alerts_on_recent_endings_only(rig: Rig) -> None:
    old = rig.workspace.create_execution(
        status="failed",
        created_at=rig.clock() - timedelta(hours=5),
        ended_at=rig.clock() - timedelta(hours=4),
    )
    recent = rig.workspace.create_execution(
        status="failed",
        created_at=rig.clock() - timedelta(minutes=20),
        ended_at=rig.clock() - timedelta(minutes=10),
    )
    report = await rig.engine(
        on_first_start="backfill", backfill_window=timedelta(hours=1)
    ).run_cycle()
    assert status_changes(report.transitions) == {(recent, "unknown", "failed")}
    assert old in {t.execution_id for t in report.transitions}


async def test_running_executions_beyond_the_scanned_pages_are_refreshed_by_id(rig: Rig) -> None:
    old_running = [
        rig.workspace.create_execution(created_at=rig.clock() - timedelta(hours=3, minutes=i))
        for i in range(3)
    ]
    engine = rig.engine(page_size=10, max_pages=2, max_refreshes_per_cycle=2)
    rig.workspace.seed_history(30, running=0, span_s=3600)  # newer history buries them
    # First poll reads only 2 of 4 pages, so the old ones are unknown; make them known:
    await rig.engine(page_size=10, max_pages=10).run_cycle()
    rig.clock.advance(seconds=15)
    for _ in range(25):  # enough new work to push everything down
        rig.workspace.create_execution(status="completed")
    await engine.run_cycle()  # learns the new ones
    rig.workspace.set_status(old_running[0], "failed")
    rig.workspace.delete(old_running[1])

    seen: set[tuple[str, str, str]] = set()
    vanished = 0
    for _ in range(2):  # two refreshes a cycle: all three within two cycles
        rig.clock.advance(seconds=15)
        rig.requests.clear()
        report = await engine.run_cycle()
        assert rig.requests.count("get") <= 2
        seen |= status_changes(report.transitions)
        vanished += report.vanished
    assert (old_running[0], "running", "failed") in seen
    assert vanished == 1
    assert all(e != old_running[1] for e, _, _ in seen), "a vanished execution never alerts"


async def test_credit_growth_of_a_running_execution_is_observed(rig: Rig) -> None:
    target = rig.workspace.create_execution(credits_used=10)
    engine = rig.engine()
    await engine.run_cycle()
    rig.clock.advance(seconds=15)
    rig.workspace.add_credits(target, 600)
    report = await engine.run_cycle()
    credits = [t for t in report.transitions if t.kind == "credits"]
    assert [(t.execution_id, t.credits_before, t.credits_after) for t in credits] == [
        (target, 10.0, 610.0)
    ]


async def test_listed_by_last_update_a_cycle_reads_only_what_changed(tmp_path: Path) -> None:
    clock = ManualClock()
    workspace = SimWorkspace(api_key=KEY, seed=8, now=clock, order="updated")
    workspace.seed_history(200, running=40, child_ratio=0.0, span_s=3600)
    requests: list[str] = []
    async with SimServer(workspace) as server, SqliteStore(tmp_path / "state.db") as store:
        config = ClientConfig(name="prod", base_url=server.url, api_key=KEY, page_size=10)
        async with ZaiaClient(config, on_request=lambda e, _: requests.append(e)) as client:
            engine = SourceEngine(
                ScanLimits(source="prod", page_size=10, max_pages=50, list_order="updated"),
                client=client,
                store=store,
                now=clock,
            )
            await engine.run_cycle()
            # The oldest running execution changes: listed by update, it moves to the top.
            oldest = workspace.execution_ids(status="running")[-1]
            clock.advance(seconds=15)
            workspace.set_status(oldest, "failed")
            requests.clear()
            report = await engine.run_cycle()
    assert status_changes(report.transitions) == {(oldest, "running", "failed")}
    assert requests == ["list"], "the change and known history share the first page"


def corrupt_one(execution_id: str) -> Middleware:
    """The simulator's answers, except that one execution read by id comes back in a
    shape the relay does not know (as an API that grew a new detail type would send it)."""

    @web.middleware
    async def corrupt(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith(f"/executions/{execution_id}"):
            assert isinstance(response, web.Response)
            assert isinstance(response.body, bytes)
            body = json.loads(response.body)
            body["detail"]["type"] = "teleport-execution"
            return web.json_response(body)
        return response

    return corrupt


async def test_one_unreadable_execution_never_blocks_the_source(tmp_path: Path) -> None:
    clock = ManualClock()
    workspace = SimWorkspace(api_key=KEY, seed=12, now=clock)
    old = workspace.create_execution(created_at=clock() - timedelta(hours=2))
    async with (
        SimServer(workspace, middlewares=[corrupt_one(old)]) as server,
        SqliteStore(tmp_path / "state.db") as store,
    ):
        config = ClientConfig(name="prod", base_url=server.url, api_key=KEY, page_size=5)
        async with ZaiaClient(config) as client:
            engine = SourceEngine(
                ScanLimits(source="prod", page_size=5, max_pages=2),
                client=client,
                store=store,
                now=clock,
            )
            await engine.run_cycle()
            for _ in range(12):  # bury it beyond the two pages a cycle reads
                workspace.create_execution(status="completed")
            clock.advance(seconds=15)
            await engine.run_cycle()
            fresh = workspace.create_execution(status="failed")
            clock.advance(seconds=15)
            report = await engine.run_cycle()
    assert (fresh, "unknown", "failed") in status_changes(report.transitions)
    assert [p.execution_id for p in report.problems] == [old]
    assert "does not match the documented schema" in report.problems[0].message
