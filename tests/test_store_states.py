"""States, transitions, cursors, message references and pruning, on SQLite and on
PostgreSQL alike: every test taking `store` (or `backend`) runs once per backend (see
tests/store_backends.py). What only one backend has stays in test_store_sqlite.py (WAL,
files, crashes, query plans) and test_store_postgres.py (schema versions, errors,
leadership, several pools).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution, Transition
from relay.store import CycleResult, MessageRefRecord, PruneResult, Store, execution_snapshot
from tests import store_backends
from tests.store_backends import Backend
from tests.test_store_sqlite import T0, cycle, make_execution, make_state, make_transition

backend, store = store_backends.backend, store_backends.store

# --- states -----------------------------------------------------------------------------


async def test_states_round_trip_every_field(store: Store) -> None:
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


async def test_upsert_replaces_the_state(store: Store) -> None:
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


async def test_load_states_among_many_rows_in_chunks(store: Store) -> None:
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


async def test_load_states_and_markers_among_many_rows(store: Store) -> None:
    template = make_state("template")
    states = [replace(template, id=f"exec-{n:05d}") for n in range(3000)]
    await store.commit_cycle(cycle(states))
    wanted = [f"exec-{n:05d}" for n in range(0, 3000, 3)] + ["exec-none"]
    loaded = await store.load_states("prod", wanted)
    assert sorted(loaded) == wanted[:-1]
    assert loaded["exec-00300"] == states[300]
    assert len(await store.load_markers("prod", wanted)) == 1000


async def test_running_states_round_robin_order(store: Store) -> None:
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


async def test_running_states_order_and_ended_since(store: Store) -> None:
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


async def test_concurrent_calls_on_one_instance(store: Store) -> None:
    cycles = [cycle([make_state(f"exec-{n}")]) for n in range(20)]
    await asyncio.gather(*(store.commit_cycle(c) for c in cycles), store.running_states("prod"))
    assert await store.state_count() == 20


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = replace(make_state("exec-1"), last_seen_at=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.commit_cycle(cycle([naive]))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.prune(before=datetime(2026, 3, 1))
    assert await store.state_count() == 0


# --- cursors ----------------------------------------------------------------------------


async def test_cursor_round_trip(store: Store) -> None:
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


# --- transitions ------------------------------------------------------------------------


async def test_transition_round_trip_drops_inputs(store: Store) -> None:
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


async def test_transitions_dedupe_by_key_across_commits_and_reopen(backend: Backend) -> None:
    failed = make_execution("exec-1", status="failed", ended_at=T0, error="first")
    again = make_execution("exec-1", status="failed", ended_at=T0, error="second")
    other = make_execution("exec-2", status="cancelled", ended_at=T0)

    async with backend.new_store() as store:
        await store.commit_cycle(cycle([], [make_transition(failed)]))
        await store.commit_cycle(
            cycle(
                [], [make_transition(again, observed_at=T0 + timedelta(1)), make_transition(other)]
            )
        )
        assert await store.transition_count() == 2
    async with backend.new_store() as reopened:
        await reopened.commit_cycle(cycle([], [make_transition(again), make_transition(other)]))
        stored = await reopened.recent_transitions()

    assert sorted(t.execution_id for t in stored) == ["exec-1", "exec-2"]
    first = next(t for t in stored if t.execution_id == "exec-1")
    # The first observation wins: it is the one alerted on.
    assert first.snapshot["detail"]["output"] == {"error": "first"}
    assert first.observed_at == T0


async def test_transitions_round_trip_and_dedupe_by_key(backend: Backend) -> None:
    failed = make_execution(
        "exec-1", status="failed", credits_used=4.25, ended_at=T0, error="first"
    )
    again = make_execution("exec-1", status="failed", credits_used=4.25, ended_at=T0, error="2nd")
    other = make_execution("exec-2", status="cancelled", ended_at=T0)
    observed = T0 + timedelta(seconds=31, microseconds=7)

    async with backend.new_store() as store:
        await store.commit_cycle(cycle([], [make_transition(failed, observed_at=observed)]))
        await store.commit_cycle(
            cycle(
                [], [make_transition(again, observed_at=T0 + timedelta(1)), make_transition(other)]
            )
        )
        assert await store.transition_count() == 2
    async with backend.new_store() as reopened:
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


async def test_recent_transitions_filters_and_limits(store: Store) -> None:
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


# --- message references and prune --------------------------------------------------------


async def test_message_refs(store: Store) -> None:
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


async def test_prune_deletes_old_finished_states_and_transitions(store: Store) -> None:
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


async def test_prune_dates_states_by_their_end_or_last_sighting(store: Store) -> None:
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
