"""Schema versions of the SQLite store: fresh files, the v1 fixture, newer and broken ones."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from relay.domain.state import SourceCursor, TrackedExecution
from relay.errors import StoreError
from relay.store import SqliteStore
from relay.store.migration import Migration, to_apply
from relay.store.sqlite.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from tests.test_store_alerts import alert_cycle, make_alert, notify
from tests.test_store_sqlite import cycle, make_execution, make_state, make_transition

FIXTURE_V1 = Path(__file__).parent / "data" / "store-v1.db"
FIXTURE_V2 = Path(__file__).parent / "data" / "store-v2.db"


def _version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])
    finally:
        conn.close()


def _tables_of(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {row[0] for row in rows}
    finally:
        conn.close()


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    # Never open the committed file itself: opening migrates it in place.
    target = tmp_path / "store-v1.db"
    shutil.copyfile(FIXTURE_V1, target)
    return target


@pytest.fixture
def v2_copy(tmp_path: Path) -> Path:
    target = tmp_path / "store-v2.db"
    shutil.copyfile(FIXTURE_V2, target)
    return target


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert LATEST_VERSION == MIGRATIONS[-1].version >= 3
    assert all(m.statements and m.name for m in MIGRATIONS)


async def test_a_new_file_gets_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with SqliteStore(path) as store:
        await store.ping()
    assert _version_of(path) == LATEST_VERSION
    assert {
        "executions", "source_cursors", "transitions", "schema_migrations",
        "alerts", "outbox", "silences", "group_states",
    } <= _tables_of(path)  # fmt: skip


async def test_migrate_step_by_step(tmp_path: Path) -> None:
    path = tmp_path / "steps.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await schema_version(conn) == 0
        assert await migrate(conn, location=str(path), target=1) == (0, 1)
        assert await migrate(conn, location=str(path), target=1) == (1, 1)
        assert await migrate(conn, location=str(path)) == (1, LATEST_VERSION)
        assert await migrate(conn, location=str(path)) == (LATEST_VERSION, LATEST_VERSION)
        with pytest.raises(ValueError, match="target version"):
            await migrate(conn, location=str(path), target=LATEST_VERSION + 1)


def test_the_fixtures_are_at_their_versions() -> None:
    # Guards the committed files themselves: a test that opened one in place would
    # upgrade it.
    assert _version_of(FIXTURE_V1) == 1
    assert "transitions" not in _tables_of(FIXTURE_V1)
    assert _version_of(FIXTURE_V2) == 2
    assert "transitions" in _tables_of(FIXTURE_V2)
    assert "alerts" not in _tables_of(FIXTURE_V2)


async def test_v1_fixture_upgrades_in_place_and_keeps_its_rows(v1_copy: Path) -> None:
    async with SqliteStore(v1_copy) as store:
        assert _version_of(v1_copy) == LATEST_VERSION

        states = await store.load_states(
            "prod", ["exec-running", "exec-failed", "exec-child", "nope"]
        )
        assert states == {
            "exec-running": TrackedExecution(
                source="prod",
                id="exec-running",
                status="running",
                credits_used=12.5,
                kind="agent",
                responder_id="resp-1",
                parent_id=None,
                agent_id="agent-1",
                workflow_id=None,
                created_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
                updated_at=datetime(2026, 3, 1, 10, 5, 0, 250000, tzinfo=UTC),
                started_at=datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC),
                ended_at=None,
                is_purged=False,
                last_seen_at=datetime(2026, 3, 1, 10, 5, 30, tzinfo=UTC),
                reported_statuses=frozenset({"running"}),
            ),
            "exec-failed": TrackedExecution(
                source="prod",
                id="exec-failed",
                status="failed",
                credits_used=3.0,
                kind="workflow",
                responder_id="resp-2",
                parent_id=None,
                agent_id=None,
                workflow_id="wf-1",
                created_at=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
                updated_at=datetime(2026, 3, 1, 9, 2, tzinfo=UTC),
                started_at=datetime(2026, 3, 1, 9, 0, 0, 500000, tzinfo=UTC),
                ended_at=datetime(2026, 3, 1, 9, 2, tzinfo=UTC),
                is_purged=False,
                last_seen_at=datetime(2026, 3, 1, 10, 5, 30, tzinfo=UTC),
                reported_statuses=frozenset({"running", "failed"}),
            ),
            "exec-child": TrackedExecution(
                source="prod",
                id="exec-child",
                status="completed",
                credits_used=0.75,
                kind="squad",
                responder_id="resp-1",
                parent_id="exec-running",
                agent_id="agent-2",
                workflow_id=None,
                created_at=datetime(2026, 3, 1, 10, 1, tzinfo=UTC),
                updated_at=datetime(2026, 3, 1, 10, 3, tzinfo=UTC),
                started_at=datetime(2026, 3, 1, 10, 1, tzinfo=UTC),
                ended_at=datetime(2026, 3, 1, 10, 3, tzinfo=UTC),
                is_purged=True,
                last_seen_at=datetime(2026, 3, 1, 10, 5, 30, tzinfo=UTC),
                reported_statuses=frozenset({"completed"}),
            ),
        }
        assert [s.id for s in await store.running_states("staging")] == ["exec-running"]
        assert await store.get_cursor("prod") == SourceCursor(
            "prod", True, datetime(2026, 3, 1, 10, 5, 30, tzinfo=UTC)
        )
        assert await store.get_cursor("staging") == SourceCursor("staging", False, None)
        assert await store.state_count() == 4
        assert await store.transition_count() == 0

        # The upgraded file takes a full cycle, transitions included.
        at = datetime(2026, 3, 1, 10, 6, tzinfo=UTC)
        done = make_execution(
            "exec-running", status="failed", ended_at=at - timedelta(seconds=5), error="boom"
        )
        state = TrackedExecution.from_execution(done, source="prod", now=at)
        await store.commit_cycle(cycle([state], [make_transition(done, observed_at=at)], at=at))
        assert (await store.load_states("prod", ["exec-running"]))["exec-running"] == state
        assert [t.to_status for t in await store.recent_transitions()] == ["failed"]

    # Opening again finds nothing left to migrate and the same rows.
    async with SqliteStore(v1_copy) as reopened:
        assert await reopened.state_count() == 4
        assert await reopened.transition_count() == 1
    assert _version_of(v1_copy) == LATEST_VERSION


async def test_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SqliteStore(path) as store:
        await store.commit_cycle(cycle([make_state("exec-1")]))
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01T00:00:00Z')",
        (LATEST_VERSION + 1,),
    )
    conn.commit()
    conn.close()

    with pytest.raises(StoreError) as caught:
        await SqliteStore(path).open()

    message = str(caught.value)
    assert "written by a newer zaia-relay" in message
    assert "upgrade" in message
    assert "point store.url elsewhere" in message
    assert str(path) in message
    assert _version_of(path) == LATEST_VERSION + 1


async def test_a_failed_migration_leaves_the_old_version(v1_copy: Path) -> None:
    # Something in the way of migration 2 makes it fail half way: nothing of it stays.
    conn = sqlite3.connect(v1_copy)
    conn.execute("CREATE INDEX transitions_by_time ON executions (id)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match=r"store-v1\.db: cannot open"):
        await SqliteStore(v1_copy).open()

    assert _version_of(v1_copy) == 1
    assert "transitions" not in _tables_of(v1_copy)


async def test_v2_fixture_upgrades_in_place_and_keeps_its_rows(v2_copy: Path) -> None:
    async with SqliteStore(v2_copy) as store:
        assert _version_of(v2_copy) == LATEST_VERSION

        states = await store.load_states("prod", ["exec-running", "exec-failed"])
        # Executions stored before migration 3 read with the filters' defaults.
        assert states["exec-failed"] == TrackedExecution(
            source="prod",
            id="exec-failed",
            status="failed",
            credits_used=3.0,
            kind="workflow",
            responder_id="resp-2",
            parent_id=None,
            agent_id=None,
            workflow_id="wf-1",
            created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
            updated_at=datetime(2026, 3, 1, 12, 2, tzinfo=UTC),
            started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
            ended_at=datetime(2026, 3, 1, 12, 2, tzinfo=UTC),
            is_purged=False,
            last_seen_at=datetime(2026, 3, 1, 12, 5, 30, tzinfo=UTC),
            reported_statuses=frozenset({"running", "failed"}),
            origin_type=None,
            is_agentic=False,
        )
        assert states["exec-running"].origin_type is None
        assert [s.id for s in await store.running_states("prod")] == ["exec-running"]
        window_start = datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
        assert [s.id for s in await store.ended_since("prod", window_start)] == ["exec-failed"]
        assert [s.id for s in await store.ended_since("staging", window_start)] == []
        [transition] = await store.recent_transitions()
        assert transition.key == "prod:exec-failed:status:failed"
        assert transition.execution().detail.output == {"error": "HTTP node got 500"}
        assert await store.get_cursor("staging") == SourceCursor(
            "staging", True, datetime(2026, 3, 1, 12, 4, 30, tzinfo=UTC)
        )

        # The upgraded file takes a full cycle: alerts, outbox, group states.
        at = datetime(2026, 3, 1, 12, 6, tzinfo=UTC)
        alert = make_alert("exec-failed", at=at)
        refreshed = replace(
            states["exec-running"], origin_type="api", is_agentic=True, last_seen_at=at
        )
        outcome = await store.commit_cycle(
            alert_cycle([alert], notify(alert, "oncall"), states=[refreshed], at=at)
        )
        assert outcome.new_alert_ids == {alert.id}
        assert (await store.load_states("prod", ["exec-running"]))["exec-running"] == refreshed
        [item] = await store.claim_due("oncall", now=at, limit=5, lease_s=10)
        assert item.notification.alert == alert

    async with SqliteStore(v2_copy) as reopened:
        assert await reopened.state_count() == 3
        assert (await reopened.get_alert(alert.id)) is not None


async def test_a_failed_migration_3_rolls_back_its_column_changes(v2_copy: Path) -> None:
    # DDL is transactional in SQLite: the ALTERs that ran before the failure go too.
    conn = sqlite3.connect(v2_copy)
    conn.execute("CREATE TABLE outbox (x)")
    conn.commit()
    conn.close()

    with pytest.raises(StoreError, match=r"store-v2\.db: cannot open"):
        await SqliteStore(v2_copy).open()

    assert _version_of(v2_copy) == 2
    conn = sqlite3.connect(v2_copy)
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(executions)")}
    finally:
        conn.close()
    assert "origin_type" not in columns
    assert "alerts" not in _tables_of(v2_copy)


async def test_a_version_recorded_under_another_name_is_refused_untouched(
    tmp_path: Path,
) -> None:
    # An unreleased build numbered the statistics index 8 (here: acknowledgements).
    path = tmp_path / "intermediate.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await migrate(conn, location=str(path), target=8)
        await conn.execute(
            "UPDATE schema_migrations SET name = 'execution statistics of the status page' "
            "WHERE version = 8"
        )

    with pytest.raises(StoreError) as caught:
        await SqliteStore(path).open()

    message = str(caught.value)
    assert "schema version 8 recorded as 'execution statistics of the status page'" in message
    assert "version 8 is 'acknowledged alerts'" in message
    assert str(path) in message
    assert _version_of(path) == 8, "nothing was applied"


async def test_a_database_with_the_same_names_opens_and_upgrades(tmp_path: Path) -> None:
    path = tmp_path / "older.db"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await migrate(conn, location=str(path), target=7)
    async with SqliteStore(path):
        pass
    assert _version_of(path) == LATEST_VERSION


@pytest.mark.parametrize(
    ("applied", "error"),
    [
        ({}, None),
        ({1: "one", 2: "two"}, None),
        ({1: "one", 2: "deux"}, "schema version 2 recorded as 'deux'"),
        ({1: "one", 2: "two", 3: "three", 4: "four"}, "written by a newer zaia-relay"),
    ],
)
def test_to_apply_checks_the_recorded_names(applied: dict[int, str], error: str | None) -> None:
    known = [Migration(version=n, name=name, statements=()) for n, name in
             [(1, "one"), (2, "two"), (3, "three")]]  # fmt: skip
    if error is None:
        done = max(applied, default=0)
        assert [m.version for m in to_apply(known, applied=applied, goal=3, store="s")] == list(
            range(done + 1, 4)
        )
    else:
        with pytest.raises(StoreError, match=error):
            to_apply(known, applied=applied, goal=3, store="s")
