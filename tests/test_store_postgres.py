"""The PostgreSQL store against a real server: what only PostgreSQL has (migrations and
schema versions, URLs and errors, search_path, leadership, two pools claiming together),
and states, transitions, cursors, message refs and prune, behaving as SQLite's do.

The alert, outbox and silence scenarios shared with SQLite run on both backends from
test_store_alerts.py, test_store_outbox.py and test_store_silences.py.

The server is RELAY_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each test gets a schema of its own (selected with `?search_path=` in the store's URL),
dropped afterwards. Without a reachable server the tests skip, except in CI (`CI=true`),
where they fail: CI provides one. See tests/store_backends.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.domain.alerts import Notification
from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution
from relay.errors import StoreError
from relay.store import CycleResult, MessageRefRecord, PruneResult
from relay.store._pg_schema import LATEST_VERSION
from relay.store.postgres import PostgresStore
from tests import store_backends
from tests.store_backends import PG_URL, pg_admin
from tests.test_store_alerts import alert_cycle, make_alert, notify
from tests.test_store_sqlite import T0, cycle, make_execution, make_state, make_transition

# The fixture (a fresh schema per test), also imported from here by test_replicas.
pg_url = store_backends.pg_url
LEASE_S = 30.0


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(pg_url, max_size=3) as opened:
        yield opened


async def _enqueue(
    store: PostgresStore, count: int, *sinks: str, at: datetime = T0, prefix: str = "exec"
) -> list[Notification]:
    alerts = [make_alert(f"{prefix}-{n:04d}", at=at) for n in range(count)]
    notifications = [n for a in alerts for n in notify(a, *sinks, at=at)]
    outcome = await store.commit_cycle(alert_cycle(alerts, notifications, at=at))
    assert outcome.enqueued == len(notifications)
    return notifications


# --- lifecycle, schema, errors ----------------------------------------------------------


async def test_lifecycle_and_schema_version(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with pytest.raises(StoreError, match="not open"):
        await store.ping()
    await store.open()
    await store.open()  # idempotent
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.state_count()
    async with store:  # opened again, nothing left to migrate
        await store.ping()
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == list(range(1, LATEST_VERSION + 1))
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'x')")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer zaia-relay"):
        await PostgresStore(pg_url).open()


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            await s.ping()
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_errors_say_what_to_do_without_the_password() -> None:
    await (await pg_admin()).close()  # skip like the others when there is no server
    refused = PostgresStore("postgresql://relay:s3cret-pw@127.0.0.1:1/relay")
    with pytest.raises(StoreError) as caught:
        await refused.open()
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://relay@127.0.0.1:1/relay" in message
    assert "cannot connect" in message
    assert "check that it runs" in message

    missing = PG_URL.split("?")[0].rsplit("/", 1)[0] + f"/no_such_db_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreError, match="database does not exist"):
        await PostgresStore(missing).open()
    with pytest.raises(ValueError, match="min_size"):
        PostgresStore(PG_URL, min_size=3, max_size=2)
    with pytest.raises(StoreError, match="not a valid PostgreSQL URL") as caught:
        await PostgresStore("postgresql://relay:s3cret-pw@db:no-port/relay").open()
    assert "s3cret-pw" not in str(caught.value)


async def test_a_missing_schema_is_named(pg_url: str) -> None:
    missing = pg_url.rsplit("=", 1)[0] + f"=no_such_schema_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreError, match="no schema of the search_path exists"):
        await PostgresStore(missing).open()


async def test_leading_a_source_named_migrate_blocks_no_start(pg_url: str) -> None:
    async with PostgresStore(pg_url) as leader:
        assert await leader.try_lead("migrate") is True
        # Another replica starting now still migrates (another key space of locks).
        async with asyncio.timeout(5), PostgresStore(pg_url) as starting:
            await starting.ping()


# --- states, transitions, cursors -------------------------------------------------------


async def test_states_round_trip_every_field(store: PostgresStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    full = TrackedExecution(
        source="prod",
        id="exec-full",
        status="failed",
        credits_used=0.1 + 0.2,  # must come back bit for bit
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
    await store.commit_cycle(cycle([full, sparse]))

    loaded = await store.load_states("prod", ["exec-full", "exec-sparse", "exec-unknown"])

    assert loaded == {"exec-full": full, "exec-sparse": sparse}
    for state in loaded.values():
        assert state.created_at.tzinfo == UTC
        assert state.last_seen_at.tzinfo == UTC
    assert await store.load_states("staging", ["exec-full"]) == {}
    assert await store.load_states("prod", []) == {}
    with pytest.raises(TypeError, match="not one id"):
        await store.load_states("prod", "exec-full")

    later = replace(sparse, status="completed", credits_used=9.5, ended_at=T0)
    await store.commit_cycle(cycle([later]))
    assert (await store.load_states("prod", ["exec-sparse"]))["exec-sparse"] == later
    assert await store.state_count() == 2
    assert await store.load_markers("prod", ["exec-sparse", "exec-full", "nope"]) == {
        "exec-sparse": StateMarkers(
            status="completed", credits_used=9.5, updated_at=later.updated_at, is_purged=False
        ),
        "exec-full": StateMarkers(
            status="failed", credits_used=0.1 + 0.2, updated_at=full.updated_at, is_purged=True
        ),
    }


async def test_load_states_among_many_rows(store: PostgresStore) -> None:
    template = make_state("template")
    states = [replace(template, id=f"exec-{n:05d}") for n in range(3000)]
    await store.commit_cycle(cycle(states))
    wanted = [f"exec-{n:05d}" for n in range(0, 3000, 3)] + ["exec-none"]
    loaded = await store.load_states("prod", wanted)
    assert sorted(loaded) == wanted[:-1]
    assert loaded["exec-00300"] == states[300]
    assert len(await store.load_markers("prod", wanted)) == 1000


async def test_cursor_round_trip(store: PostgresStore) -> None:
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


async def test_transitions_round_trip_and_dedupe_by_key(pg_url: str) -> None:
    failed = make_execution(
        "exec-1", status="failed", credits_used=4.25, ended_at=T0, error="first"
    )
    again = make_execution("exec-1", status="failed", credits_used=4.25, ended_at=T0, error="2nd")
    other = make_execution("exec-2", status="cancelled", ended_at=T0)
    observed = T0 + timedelta(seconds=31, microseconds=7)

    async with PostgresStore(pg_url) as store:
        await store.commit_cycle(cycle([], [make_transition(failed, observed_at=observed)]))
        await store.commit_cycle(
            cycle(
                [], [make_transition(again, observed_at=T0 + timedelta(1)), make_transition(other)]
            )
        )
        assert await store.transition_count() == 2
    async with PostgresStore(pg_url) as reopened:
        await reopened.commit_cycle(cycle([], [make_transition(again), make_transition(other)]))
        stored = await reopened.recent_transitions()
        assert await reopened.recent_transitions(limit=1) == stored[:1]
        assert await reopened.recent_transitions(source="staging") == []
        assert await reopened.transition_count(source="prod") == 2

    first = next(t for t in stored if t.execution_id == "exec-1")
    assert first.snapshot["detail"]["output"] == {"error": "first"}  # the first one wins
    assert first.observed_at == observed
    assert (first.from_status, first.to_status, first.credits_after) == ("running", "failed", 4.25)
    assert "input" not in first.snapshot["detail"]
    assert all("input" not in event for event in first.snapshot["detail"]["events"])
    assert first.execution().id == "exec-1"
    assert [t.execution_id for t in stored] == ["exec-1", "exec-2"]  # newest first


async def test_running_states_order_and_ended_since(store: PostgresStore) -> None:
    seen = {
        "exec-c": T0,
        "exec-a": T0 + timedelta(seconds=5),
        "exec-b": T0 + timedelta(seconds=5),
        "exec-d": T0 - timedelta(minutes=1),
    }
    states = [make_state(i, last_seen_at=at) for i, at in seen.items()]
    states += [
        make_state("old", status="failed", ended_at=T0 - timedelta(minutes=20)),
        make_state("edge", status="completed", ended_at=T0 - timedelta(minutes=15)),
        make_state("late", status="failed", ended_at=T0 - timedelta(minutes=1)),
        replace(make_state("gone", status="failed", ended_at=T0), status="vanished"),
    ]
    staging = make_state("exec-s", source="staging", last_seen_at=T0 - timedelta(hours=1))
    await store.commit_cycle(cycle(states))
    await store.commit_cycle(cycle([staging], source="staging"))

    running = await store.running_states("prod")

    assert [s.id for s in running] == ["exec-d", "exec-c", "exec-a", "exec-b"]
    ended = await store.ended_since("prod", T0 - timedelta(minutes=15))
    assert [s.id for s in ended] == ["edge", "late", "gone"]
    assert await store.state_count(source="prod") == 8
    assert await store.state_count() == 9


# --- two replicas claiming together (two pools) -----------------------------------------


async def _claim_rounds(
    store: PostgresStore, *, rounds: int, limit: int, barrier: asyncio.Barrier
) -> list[str]:
    got: list[str] = []
    for _ in range(rounds):
        await barrier.wait()  # every claimer starts each round together
        batch = await store.claim_due("oncall", now=T0, limit=limit, lease_s=LEASE_S)
        got += [item.notification.id for item in batch]
    return got


async def test_two_claimers_never_claim_the_same_row(pg_url: str) -> None:
    first, second = PostgresStore(pg_url, max_size=2), PostgresStore(pg_url, max_size=2)
    await first.open()
    await second.open()
    try:
        notifications = await _enqueue(first, 300, "oncall")
        # Two replicas (two pools), each with two concurrent tasks: 4 x 7 rows a round.
        claimers = (first, second, first, second)
        barrier = asyncio.Barrier(len(claimers))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_claim_rounds(c, rounds=12, limit=7, barrier=barrier))
                for c in claimers
            ]
        claimed = [ids for task in tasks for ids in task.result()]

        assert sorted(claimed) == sorted(n.id for n in notifications)
        assert len(set(claimed)) == len(claimed)
        assert tasks[0].result() + tasks[2].result()
        assert tasks[1].result() + tasks[3].result()
    finally:
        await asyncio.gather(first.close(), second.close())


# --- message refs -----------------------------------------------------------------------


async def test_message_refs(store: PostgresStore) -> None:
    assert await store.get_message_ref("slack", "alert_1") is None
    ref = MessageRefRecord(channel="C123", ts="1700000000.000100", single=True)
    await store.put_message_ref("slack", "alert_1", ref, now=T0)
    assert await store.get_message_ref("slack", "alert_1") == ref
    assert await store.get_message_ref("other", "alert_1") is None
    digest = MessageRefRecord(channel="C123", ts="1700000001.000200", single=False)
    await store.put_message_ref("slack", "alert_1", digest, now=T0 + timedelta(days=30))
    assert await store.get_message_ref("slack", "alert_1") == digest
    # Pruned by the age of the first reference.
    await store.prune(before=T0 + timedelta(days=1))
    assert await store.get_message_ref("slack", "alert_1") is None


# --- prune ------------------------------------------------------------------------------


async def test_prune(store: PostgresStore) -> None:
    old, new = T0 - timedelta(days=1), T0 + timedelta(hours=1)
    states = [
        make_state("old-failed", status="failed", ended_at=old, last_seen_at=new),
        replace(make_state("old-vanished", last_seen_at=old), status="vanished"),
        make_state("old-running", created_at=old - timedelta(days=30), last_seen_at=old),
        make_state("new-completed", status="completed", ended_at=new, last_seen_at=new),
    ]
    transitions = [
        make_transition(
            make_execution("old-failed", status="failed", ended_at=old), observed_at=old
        ),
        make_transition(make_execution("x", status="failed", ended_at=new), observed_at=new),
    ]
    await store.commit_cycle(cycle(states, transitions, at=old))

    result = await store.prune(before=T0)

    assert result == PruneResult(states_deleted=2, transitions_deleted=1)
    remaining = await store.load_states("prod", [s.id for s in states])
    assert sorted(remaining) == ["new-completed", "old-running"]
    assert await store.prune(before=T0) == PruneResult(0, 0)


# --- leadership -------------------------------------------------------------------------


async def test_one_store_leads_a_source_until_it_closes(pg_url: str) -> None:
    source, other = f"lead-{uuid.uuid4().hex}", f"lead-{uuid.uuid4().hex}"
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    async with first, second:
        assert await first.try_lead(source) is True
        assert await first.try_lead(source) is True  # still leading
        assert await second.try_lead(source) is False
        assert await second.try_lead(other) is True
        assert await first.try_lead(other) is False
        await first.close()  # releases its locks at once
        assert await second.try_lead(source) is True
        await first.open()
        assert await first.try_lead(source) is False
    with pytest.raises(StoreError, match="not open"):
        await first.try_lead(source)


async def test_a_leader_that_loses_its_connection_hands_over(pg_url: str) -> None:
    source = f"lead-{uuid.uuid4().hex}"
    first, second = PostgresStore(pg_url), PostgresStore(pg_url)
    admin = await asyncpg.connect(pg_url)
    async with first, second:
        try:
            assert await first.try_lead(source) is True
            pid = await admin.fetchval(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND objsubid = 1 AND objid = (hashtext('zaia-relay:' || $1::text)::bigint "
                "& 4294967295)::oid",
                source,
            )
            assert pid is not None
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            for _ in range(100):  # the backend ends within milliseconds
                if await second.try_lead(source):
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the lock did not pass on when its session ended")
            # The old leader notices and no longer leads.
            assert await first.try_lead(source) is False
        finally:
            await admin.close()
