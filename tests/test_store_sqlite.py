"""The SQLite store against real files in tmp_path: what only SQLite has (files, WAL,
crashes, query plans, URLs). The builders here serve every store test.

States, transitions, cursors and pruning run on both backends from test_store_states.py;
alerts, outbox and silences from test_store_alerts.py, test_store_outbox.py and
test_store_silences.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relay.domain.models import Execution
from relay.domain.state import SourceCursor, TrackedExecution, Transition
from relay.errors import ConfigError, StoreError
from relay.store import (
    CycleResult,
    PostgresStore,
    SqliteStore,
    open_store,
    sqlite_path,
)
from relay.store import sql as statements
from relay.store.sql_alerts import alert_page_query, encode_cursor
from relay.store.sqlite.dialect import SQLITE, SqliteSession

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


# --- query plans ------------------------------------------------------------------------


def _as_run(statement: str) -> str:
    """A store statement as SQLite runs it, with `?` placeholders."""
    return SQLITE.render(statement)[0]


def _as_run_with(statement: str, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    query, names = SQLITE.render(statement)
    return query, tuple(params[name] for name in names)


async def test_hot_queries_use_indexes(tmp_path: Path) -> None:
    # Speed without a timed assertion: every query the engine runs each cycle must be
    # answered from an index, never by scanning the table.
    path = tmp_path / "plans.db"
    async with SqliteStore(path):
        pass
    conn = sqlite3.connect(path)
    try:
        queries = {
            f"{statements.STATE_SELECT} WHERE source = ? AND id IN (?, ?)": 3,
            _as_run(statements.RUNNING_STATES): 1,
            _as_run(statements.PRUNE_STATES): 1,
            _as_run(statements.PRUNE_TRANSITIONS): 1,
            f"{statements.TRANSITION_SELECT} ORDER BY observed_at DESC, seq DESC LIMIT ?": 1,
            f"{statements.TRANSITION_SELECT} WHERE source = ? "
            "ORDER BY observed_at DESC, seq DESC LIMIT ?": 2,
            _as_run(statements.ENDED_STATES): 2,
            _as_run(statements.PRUNE_ALERTS): 1,
            _as_run(statements.PRUNE_DELIVERED): 1,
            _as_run(statements.GROUP_SELECT): 1,
        }
        # Listing pages: the statement with the parameters it is really run with.
        cursor = encode_cursor("2026-03-01T12:00:00.000000Z", "alert_x")
        pages = [
            _as_run_with(
                *alert_page_query(
                    dialect=SQLITE,
                    equal={"rule": rule, "state": state, "source": None},
                    since=None,
                    limit=10,
                    before=before,
                )
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


class _WrappingConnection:
    """The part of an aiosqlite connection a session's statements use, with SQLite's
    32-bit `total_changes` counter about to wrap (as it does in a long-lived process on
    Python 3.11): each statement changes three rows."""

    def __init__(self) -> None:
        self.total_changes = 2**31 - 2

    def _changed(self) -> None:
        wrapped = (self.total_changes + 3 + 2**31) % 2**32 - 2**31
        self.total_changes = wrapped

    async def execute_fetchall(self, _query: str, _args: object) -> list[object]:
        self._changed()
        return []

    async def executemany(self, _query: str, _args: object) -> None:
        self._changed()


async def test_rows_changed_are_counted_across_the_counters_wrap() -> None:
    conn = _WrappingConnection()
    session = SqliteSession(conn)  # type: ignore[arg-type]
    assert await session.execute("UPDATE outbox SET attempts = 0") == 3
    assert conn.total_changes < 0  # it did wrap
    assert await session.execute("UPDATE outbox SET attempts = 0") == 3
