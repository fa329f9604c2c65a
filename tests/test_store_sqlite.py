"""The SQLite store against real files in tmp_path."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from relay.domain.models import Execution
from relay.domain.state import SourceCursor, TrackedExecution, Transition
from relay.errors import ConfigError, StoreError
from relay.store import (
    CycleResult,
    PostgresStore,
    PruneResult,
    SqliteStore,
    execution_snapshot,
    open_store,
    sqlite_path,
)
from relay.store import _sqlite_alerts as alerts_sql
from relay.store import _sqlite_rules as rules_sql
from relay.store import sqlite as sqlite_module

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

# --- builders ---------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def make_execution(
    execution_id: str,
    *,
    status: str = "running",
    kind: str = "agent",
    credits_used: float = 0.0,
    parent_id: str | None = None,
    responder_id: str = "resp-1",
    created_at: datetime = T0,
    ended_at: datetime | None = None,
    is_purged: bool = False,
    error: str | None = None,
) -> Execution:
    """A small but complete execution, with inputs that must never be stored."""
    event_status = "failed" if status == "failed" else "completed"
    event: dict[str, Any] = {
        "id": f"{execution_id}-ev1",
        "label": "First step",
        "status": event_status,
        "creditsUsed": credits_used,
        "startedAt": _iso(created_at),
        "endedAt": _iso(ended_at or created_at + timedelta(seconds=1)),
        "input": {"prompt": "my card number is 4111 1111 1111 1111"},
        "output": {"error": error} if error else {"text": "done"},
    }
    if kind == "workflow":
        event |= {
            "type": "workflow-node",
            "childExecutionId": None,
            "nodeType": "http",
            "workflowNodeId": "node-1",
        }
        detail: dict[str, Any] = {
            "type": "workflow-execution",
            "workflowId": "wf-1",
            "workflowImplementationId": "impl-1",
            "origin": {"type": "webhook-request", "workflowTriggerId": "trigger-1"},
        }
    else:
        event |= {"type": "iteration", "llm": "gpt-x", "llmProvider": {"id": None, "name": "ai"}}
        detail = {
            "type": "squad-execution" if kind == "squad" else "agent-execution",
            "agentId": "agent-1",
            "origin": {"type": "api", "apiKeyId": "key-1"},
        }
        if kind == "squad":
            detail["squadId"] = "squad-1"
    detail |= {
        "input": {"email": "someone@example.com"},
        "output": {"error": error} if error else None,
        "events": [event],
    }
    return Execution.model_validate(
        {
            "id": execution_id,
            "workspaceId": "ws-1",
            "responderId": responder_id,
            "parentId": parent_id,
            "status": status,
            "isAgentic": False,
            "isPurged": is_purged,
            "creditsUsed": credits_used,
            "createdAt": _iso(created_at),
            "updatedAt": _iso(ended_at or created_at),
            "startedAt": _iso(created_at),
            "endedAt": _iso(ended_at),
            "detail": detail,
        }
    )


def make_state(
    execution_id: str,
    *,
    source: str = "prod",
    last_seen_at: datetime = T0,
    **fields: Any,
) -> TrackedExecution:
    return TrackedExecution.from_execution(
        make_execution(execution_id, **fields), source=source, now=last_seen_at
    )


def make_transition(
    execution: Execution,
    *,
    source: str = "prod",
    from_status: str = "running",
    observed_at: datetime = T0,
    alertable: bool = True,
) -> Transition:
    return Transition(
        source=source,
        execution_id=execution.id,
        kind="status",
        from_status=from_status,
        to_status=execution.status,
        credits_before=0.0,
        credits_after=execution.credits_used,
        observed_at=observed_at,
        alertable=alertable,
        execution=execution,
    )


def cycle(
    states: list[TrackedExecution] | None = None,
    transitions: list[Transition] | None = None,
    *,
    source: str = "prod",
    at: datetime = T0,
) -> CycleResult:
    return CycleResult(
        source=source,
        states=states or [],
        transitions=transitions or [],
        cursor=SourceCursor(source=source, first_poll_done=True, last_success_at=at),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "relay.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(db_path) as opened:
        yield opened


# --- round trips ------------------------------------------------------------------------


async def test_states_round_trip_every_field(store: SqliteStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    full = TrackedExecution(
        source="prod",
        id="exec-full",
        status="failed",
        credits_used=0.1 + 0.2,  # not representable in decimal: must come back bit for bit
        kind="squad",
        responder_id="resp-7",
        parent_id="exec-parent",
        agent_id="agent-7",
        workflow_id="wf-7",
        created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, 5, 4, 5, 999999, tzinfo=plus_two),
        started_at=datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC),
        ended_at=datetime(2026, 1, 2, 3, 9, 0, 123456, tzinfo=UTC),
        is_purged=True,
        last_seen_at=datetime(2026, 1, 2, 3, 9, 1, 1, tzinfo=UTC),
        reported_statuses=frozenset({"running", "failed"}),
        origin_type="whatsapp-message",
        is_agentic=True,
    )
    sparse = make_state("exec-sparse", kind="workflow")
    assert sparse.agent_id is None
    assert sparse.ended_at is None
    assert sparse.origin_type == "webhook-request"
    assert sparse.is_agentic is False
    await store.commit_cycle(cycle([full, sparse]))

    loaded = await store.load_states("prod", ["exec-full", "exec-sparse", "exec-unknown"])

    assert loaded == {"exec-full": full, "exec-sparse": sparse}
    for state in loaded.values():
        assert state.created_at.tzinfo == UTC
        assert state.last_seen_at.tzinfo == UTC
    assert loaded["exec-full"].updated_at.utcoffset() == timedelta(0)
    assert await store.load_states("staging", ["exec-full"]) == {}


async def test_upsert_replaces_the_state(store: SqliteStore) -> None:
    first = make_state("exec-1")
    later = replace(
        first,
        status="completed",
        credits_used=9.5,
        ended_at=T0 + timedelta(minutes=1),
        last_seen_at=T0 + timedelta(minutes=2),
        reported_statuses=frozenset({"running", "completed"}),
    )
    await store.commit_cycle(cycle([first]))
    await store.commit_cycle(cycle([later]))

    assert await store.load_states("prod", ["exec-1"]) == {"exec-1": later}
    assert await store.state_count() == 1


async def test_cursor_round_trip(store: SqliteStore) -> None:
    assert await store.get_cursor("prod") is None
    baseline = CycleResult(
        source="prod",
        states=[],
        transitions=[],
        cursor=SourceCursor(source="prod", first_poll_done=False, last_success_at=None),
    )
    await store.commit_cycle(baseline)
    assert await store.get_cursor("prod") == baseline.cursor

    at = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
    await store.commit_cycle(cycle(at=at))
    assert await store.get_cursor("prod") == SourceCursor("prod", True, at)
    assert await store.get_cursor("staging") is None


async def test_transition_round_trip_drops_inputs(store: SqliteStore) -> None:
    execution = make_execution(
        "exec-1",
        status="failed",
        credits_used=4.25,
        ended_at=T0 + timedelta(seconds=30),
        error="Tool timed out",
    )
    status = make_transition(execution, observed_at=T0 + timedelta(seconds=31, microseconds=7))
    credits = Transition(
        source="prod",
        execution_id="exec-1",
        kind="credits",
        from_status="running",
        to_status="running",
        credits_before=1.5,
        credits_after=4.25,
        observed_at=T0 + timedelta(seconds=20),
        alertable=False,
        execution=execution,
    )
    await store.commit_cycle(cycle([], [credits, status]))

    newest, older = await store.recent_transitions()

    assert (newest.key, older.key) == (status.key, credits.key)
    for stored, original in ((newest, status), (older, credits)):
        assert stored.source == original.source
        assert stored.execution_id == original.execution_id
        assert stored.kind == original.kind
        assert stored.from_status == original.from_status
        assert stored.to_status == original.to_status
        assert stored.credits_before == original.credits_before
        assert stored.credits_after == original.credits_after
        assert stored.observed_at == original.observed_at
        assert stored.observed_at.tzinfo == UTC
        assert stored.alertable is original.alertable
    snapshot = newest.snapshot
    assert "input" not in snapshot["detail"]
    assert all("input" not in event for event in snapshot["detail"]["events"])
    assert "4111" not in str(snapshot)
    assert "someone@example.com" not in str(snapshot)
    assert snapshot["detail"]["output"] == {"error": "Tool timed out"}
    assert snapshot["detail"]["events"][0]["output"] == {"error": "Tool timed out"}
    assert snapshot == execution_snapshot(execution)
    assert snapshot["creditsUsed"] == 4.25  # camelCase, as the API spells it
    reparsed = newest.execution()
    assert reparsed.detail.input == {}
    assert reparsed.model_copy(update={"detail": execution.detail}) == execution


async def test_transitions_dedupe_by_key_across_commits_and_reopen(db_path: Path) -> None:
    failed = make_execution("exec-1", status="failed", ended_at=T0, error="first")
    again = make_execution("exec-1", status="failed", ended_at=T0, error="second")
    other = make_execution("exec-2", status="cancelled", ended_at=T0)

    async with SqliteStore(db_path) as store:
        await store.commit_cycle(cycle([], [make_transition(failed)]))
        await store.commit_cycle(
            cycle(
                [], [make_transition(again, observed_at=T0 + timedelta(1)), make_transition(other)]
            )
        )
        assert await store.transition_count() == 2
    async with SqliteStore(db_path) as reopened:
        await reopened.commit_cycle(cycle([], [make_transition(again), make_transition(other)]))
        stored = await reopened.recent_transitions()

    assert sorted(t.execution_id for t in stored) == ["exec-1", "exec-2"]
    first = next(t for t in stored if t.execution_id == "exec-1")
    # The first observation wins: it is the one alerted on.
    assert first.snapshot["detail"]["output"] == {"error": "first"}
    assert first.observed_at == T0


async def test_recent_transitions_filters_and_limits(store: SqliteStore) -> None:
    for minute in range(5):
        execution = make_execution(f"exec-{minute}", status="failed", ended_at=T0)
        at = T0 + timedelta(minutes=minute)
        await store.commit_cycle(cycle([], [make_transition(execution, observed_at=at)]))
    staging = make_execution("exec-s", status="failed", ended_at=T0)
    await store.commit_cycle(
        cycle([], [make_transition(staging, source="staging")], source="staging")
    )

    newest = await store.recent_transitions(source="prod", limit=2)

    assert [t.execution_id for t in newest] == ["exec-4", "exec-3"]
    assert [t.execution_id for t in await store.recent_transitions(source="staging")] == ["exec-s"]
    assert await store.recent_transitions(limit=0) == []
    assert await store.transition_count() == 6
    assert await store.transition_count(source="prod") == 5
    assert await store.transition_count(source="nowhere") == 0


async def test_running_states_round_robin_order(store: SqliteStore) -> None:
    seen = {
        "exec-c": T0,
        "exec-a": T0 + timedelta(seconds=5),
        "exec-b": T0 + timedelta(seconds=5),
        "exec-d": T0 - timedelta(minutes=1),
    }
    states = [make_state(i, last_seen_at=at) for i, at in seen.items()]
    states.append(make_state("exec-done", status="completed", ended_at=T0, last_seen_at=T0))
    staging = make_state("exec-s", source="staging", last_seen_at=T0 - timedelta(hours=1))
    await store.commit_cycle(cycle(states))
    await store.commit_cycle(cycle([staging], source="staging"))

    running = await store.running_states("prod")

    assert [s.id for s in running] == ["exec-d", "exec-c", "exec-a", "exec-b"]
    assert all(s.is_running for s in running)
    assert await store.state_count(source="prod") == 5
    assert await store.state_count() == 6


async def test_load_states_among_many_rows(store: SqliteStore) -> None:
    template = make_state("template")
    for batch in range(20):
        states = [replace(template, id=f"exec-{batch:02d}-{n:04d}") for n in range(1000)]
        await store.commit_cycle(cycle(states))
    assert await store.state_count() == 20_000
    wanted = [f"exec-{n % 20:02d}-{n * 7 % 1000:04d}" for n in range(95)]
    wanted += [f"missing-{n}" for n in range(5)]

    found = await store.load_states("prod", wanted)

    assert set(found) == {w for w in wanted if w.startswith("exec-")}
    # More ids than one statement may bind are read in chunks.
    many = [f"exec-03-{n:04d}" for n in range(1000)] * 2
    assert len(await store.load_states("prod", many)) == 1000
    assert await store.load_states("prod", []) == {}
    with pytest.raises(TypeError, match="not one id"):
        await store.load_states("prod", "exec-00-0001")


async def test_hot_queries_use_indexes(tmp_path: Path) -> None:
    # Speed without a timed assertion: every query the engine runs each cycle must be
    # answered from an index, never by scanning the table.
    path = tmp_path / "plans.db"
    async with SqliteStore(path):
        pass
    conn = sqlite3.connect(path)
    try:
        queries = {
            f"{sqlite_module._STATE_SELECT} WHERE source = ? AND id IN (?, ?)": 3,
            sqlite_module._RUNNING_SELECT: 1,
            sqlite_module._PRUNE_STATES: 1,
            sqlite_module._PRUNE_TRANSITIONS: 1,
            f"{sqlite_module._TRANSITION_SELECT} ORDER BY observed_at DESC, seq DESC LIMIT ?": 1,
            f"{sqlite_module._TRANSITION_SELECT} WHERE source = ? "
            "ORDER BY observed_at DESC, seq DESC LIMIT ?": 2,
            sqlite_module._ENDED_SELECT: 2,
            alerts_sql.PRUNE_ALERTS: 1,
            alerts_sql.PRUNE_DELIVERED: 1,
            rules_sql.GROUP_SELECT: 1,
        }
        # Listing pages: the statement with the parameters it is really run with.
        cursor = alerts_sql.encode_cursor("2026-03-01T12:00:00.000000Z", "alert_x")
        pages = [
            alerts_sql.list_query(
                rule=rule, state=state, source=None, since=None, limit=10, before=before
            )
            for rule, state, before in [
                (None, None, None),
                ("r", None, None),
                (None, "firing", None),
                (None, None, cursor),
                ("r", None, cursor),
            ]
        ]
        runs = [(sql, ("x",) * arity) for sql, arity in queries.items()] + pages
        for sql, params in runs:
            plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "SCAN" not in plan or "USING" in plan, (sql, plan)
            assert "TEMP B-TREE" not in plan, (sql, plan)
    finally:
        conn.close()


# --- prune ------------------------------------------------------------------------------


async def test_prune_deletes_old_finished_states_and_transitions(store: SqliteStore) -> None:
    cutoff = T0
    old = cutoff - timedelta(days=1)
    new = cutoff + timedelta(hours=1)
    states = [
        make_state("old-failed", status="failed", ended_at=old, last_seen_at=new),
        # A vanished state has no ended_at: its last sighting dates it.
        replace(make_state("old-vanished", last_seen_at=old), status="vanished"),
        make_state("old-running", created_at=old - timedelta(days=30), last_seen_at=old),
        make_state("new-completed", status="completed", ended_at=new, last_seen_at=new),
        replace(make_state("new-vanished", last_seen_at=new), status="vanished"),
    ]
    failed = make_execution("old-failed", status="failed", ended_at=old)
    transitions = [
        make_transition(failed, observed_at=old),
        make_transition(make_execution("x", status="failed", ended_at=new), observed_at=new),
    ]
    await store.commit_cycle(cycle(states, transitions))

    result = await store.prune(before=cutoff)

    assert result == PruneResult(states_deleted=2, transitions_deleted=1)
    remaining = await store.load_states("prod", [s.id for s in states])
    assert sorted(remaining) == ["new-completed", "new-vanished", "old-running"]
    assert [t.execution_id for t in await store.recent_transitions()] == ["x"]
    assert await store.prune(before=cutoff) == PruneResult(0, 0)


async def test_prune_keeps_a_steady_stream_bounded(store: SqliteStore, db_path: Path) -> None:
    retention = timedelta(days=7)
    per_day = 150
    counts: list[tuple[int, int]] = []
    sizes: dict[int, int] = {}
    for day in range(30):
        start = T0 + timedelta(days=day)
        ended = start + timedelta(minutes=10)
        executions = [
            make_execution(f"d{day}-{n}", status="failed", ended_at=ended, created_at=start)
            for n in range(per_day)
        ]
        # One execution a day never ends: running states are kept however old they get.
        stuck = make_state(f"d{day}-stuck", created_at=start, last_seen_at=ended)
        await store.commit_cycle(
            cycle(
                [TrackedExecution.from_execution(e, source="prod", now=ended) for e in executions]
                + [stuck],
                [make_transition(e, observed_at=ended) for e in executions],
                at=ended,
            )
        )
        await store.prune(before=ended - retention)
        counts.append((await store.state_count(), await store.transition_count()))
        sizes[day] = _checkpointed_size(db_path)

    assert max(t for _, t in counts) <= (retention.days + 1) * per_day
    assert max(s for s, _ in counts) <= (retention.days + 1) * per_day + 30
    assert counts[-1] == ((retention.days + 1) * per_day + 30, (retention.days + 1) * per_day)
    assert len(await store.running_states("prod")) == 30
    # Freed pages are reused: once retention is reached the file stops growing.
    assert sizes[29] <= sizes[12] * 1.25


def _checkpointed_size(path: Path) -> int:
    # The WAL holds recent pages until a checkpoint copies them into the file; checkpoint
    # from a second connection so the file size says how many pages the data needs.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()
    return path.stat().st_size


# --- concurrency and crashes ------------------------------------------------------------


async def test_two_instances_share_one_file(db_path: Path) -> None:
    first, second = SqliteStore(db_path), SqliteStore(db_path)
    try:
        # Both create the schema of a new file at once: one waits for the other.
        async with asyncio.TaskGroup() as group:
            group.create_task(first.open())
            group.create_task(second.open())
        async with asyncio.TaskGroup() as group:
            group.create_task(first.commit_cycle(cycle([make_state("from-first")])))
            group.create_task(second.commit_cycle(cycle([make_state("from-second")])))
        assert sorted(await second.load_states("prod", ["from-first", "from-second"])) == [
            "from-first",
            "from-second",
        ]
        await second.commit_cycle(cycle([make_state("later")]))
        assert "later" in await first.load_states("prod", ["later"])
        assert (await first.state_count(), await second.state_count()) == (3, 3)
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_concurrent_calls_on_one_instance(store: SqliteStore) -> None:
    cycles = [cycle([make_state(f"exec-{n}")]) for n in range(20)]
    await asyncio.gather(*(store.commit_cycle(c) for c in cycles), store.running_states("prod"))
    assert await store.state_count() == 20


async def test_committed_cycle_survives_without_close(db_path: Path) -> None:
    crashed = SqliteStore(db_path)
    await crashed.open()
    state = make_state("exec-1", status="failed", ended_at=T0)
    transition = make_transition(make_execution("exec-1", status="failed", ended_at=T0))
    try:
        await crashed.commit_cycle(cycle([state], [transition]))
        # A fresh instance reads the file while the first never closed or checkpointed.
        async with SqliteStore(db_path) as fresh:
            assert await fresh.load_states("prod", ["exec-1"]) == {"exec-1": state}
            assert [t.key for t in await fresh.recent_transitions()] == [transition.key]
    finally:
        await crashed.close()


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from relay.domain.state import SourceCursor
    from relay.store import CycleResult, SqliteStore
    from tests.test_store_alerts import make_alert, notify
    from tests.test_store_sqlite import make_state

    async def main() -> None:
        store = SqliteStore(sys.argv[1])
        await store.open()
        alert = make_alert("exec-killed")
        await store.commit_cycle(CycleResult(
            source="prod",
            states=[make_state("exec-killed", status="cancelled", ended_at=datetime.now(UTC))],
            transitions=[],
            cursor=SourceCursor("prod", True, datetime(2026, 3, 1, tzinfo=UTC)),
            alerts=[alert],
            notifications=notify(alert, "oncall"),
        ))
        print("committed", flush=True)
        sys.stdin.read()  # wait for the kill, holding the store open

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_commit_survives_kill_9(db_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        str(db_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert child.stdout is not None
        output: list[bytes] = []
        while not output or output[-1] not in (b"committed\n", b""):  # it may log first
            output.append(await asyncio.wait_for(child.stdout.readline(), timeout=60))
        assert output[-1] == b"committed\n", output
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    async with SqliteStore(db_path) as store:
        loaded = await store.load_states("prod", ["exec-killed"])
        assert loaded["exec-killed"].status == "cancelled"
        assert await store.get_cursor("prod") == SourceCursor(
            "prod", True, datetime(2026, 3, 1, tzinfo=UTC)
        )
        # The alert and its notification were committed with the state: after the
        # crash the notification is still there to deliver.
        [item] = await store.claim_due("oncall", now=T0, limit=10, lease_s=10)
        assert item.notification.alert.execution is not None
        assert item.notification.alert.execution.id == "exec-killed"


# --- failures ---------------------------------------------------------------------------


async def test_failed_cycle_stores_nothing(store: SqliteStore) -> None:
    good = make_state("exec-good")
    broken = replace(make_state("exec-broken"), responder_id=None)  # violates NOT NULL
    transition = make_transition(make_execution("exec-good", status="failed", ended_at=T0))

    with pytest.raises(StoreError, match=r"relay\.db: cannot commit a poll cycle"):
        await store.commit_cycle(cycle([good, broken], [transition]))

    assert await store.state_count() == 0
    assert await store.transition_count() == 0
    assert await store.get_cursor("prod") is None
    await store.commit_cycle(cycle([good]))  # the store is still usable
    assert await store.state_count() == 1


async def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    naive = replace(make_state("exec-1"), last_seen_at=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.commit_cycle(cycle([naive]))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.prune(before=datetime(2026, 3, 1))
    assert await store.state_count() == 0


def test_cycle_result_refuses_records_of_another_source() -> None:
    with pytest.raises(ValueError, match="staging"):
        cycle([make_state("exec-1", source="staging")])


async def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the pages you are looking for\n" * 200)
    with pytest.raises(StoreError, match="not a zaia-relay database") as caught:
        await SqliteStore(path).open()
    assert str(path) in str(caught.value)


async def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"not a directory|cannot open") as caught:
        await SqliteStore(tmp_path).open()
    assert str(tmp_path) in str(caught.value)


async def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create directory"):
        await SqliteStore(tmp_path / "file" / "state.db").open()


async def test_lifecycle(db_path: Path) -> None:
    store = SqliteStore(db_path)
    with pytest.raises(StoreError, match="not open"):
        await store.ping()
    with pytest.raises(StoreError, match="not open"):
        await store.state_count()
    await store.open()
    await store.open()  # idempotent
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.ping()
    async with store:  # and it can be opened again
        await store.ping()


# --- open_store -------------------------------------------------------------------------


def test_open_store_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = open_store("sqlite:///var/lib/zaia-relay/state.db")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == Path("/var/lib/zaia-relay/state.db")
    assert sqlite_path("sqlite:////var/lib/state.db") == Path("/var/lib/state.db")
    assert sqlite_path("sqlite:state.db") == tmp_path / "state.db"
    assert sqlite_path("sqlite://data/state.db") == tmp_path / "data" / "state.db"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite://:memory:",
        "sqlite::memory:",
        "sqlite://file::memory:",
        "sqlite:///state.db?mode=memory",
        "sqlite://",
        "sqlite:///",
        "mysql://localhost/db",
        "state.db",
    ],
)
def test_open_store_refuses_urls(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(url)
    assert [p.path for p in caught.value.problems] == ["store.url"]
    assert "sqlite:///" in str(caught.value)  # it shows a URL that works


@pytest.mark.parametrize(
    "url",
    ["postgresql://relay@db/relay", "postgres://db/relay", "postgresql+asyncpg://db/relay"],
)
def test_open_store_picks_postgres_for_its_urls(url: str) -> None:
    assert isinstance(open_store(url), PostgresStore)
