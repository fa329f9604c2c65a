"""The PostgreSQL store against a real server, behaving as the SQLite one does.

The server is RELAY_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each test gets a schema of its own (selected with `?search_path=` in the store's URL),
dropped afterwards. Without a reachable server the tests skip, except in CI (`CI=true`),
where they fail: CI provides one.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.domain.alerts import Notification
from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution
from relay.errors import StoreError
from relay.store import CommitOutcome, CycleResult, MessageRefRecord, OutboxCounts, PruneResult
from relay.store._pg_base import redact_url
from relay.store._pg_schema import LATEST_VERSION
from relay.store._sqlite_outbox import MAX_ERROR_CHARS
from relay.store.postgres import PostgresStore
from tests.test_store_alerts import (
    alert_cycle,
    group_state,
    make_alert,
    make_window_alert,
    notify,
)
from tests.test_store_silences import make_silence
from tests.test_store_sqlite import T0, cycle, make_execution, make_state, make_transition
from tests.tools import in_ci

PG_URL = os.environ.get("RELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LEASE_S = 30.0
_unreachable: list[str] = []


def _skip_or_fail(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a PostgreSQL server is required)")
    pytest.skip(reason)


async def _admin() -> Any:
    if _unreachable:
        _skip_or_fail(_unreachable[0])
    try:
        return await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = (
            f"PostgreSQL at {redact_url(PG_URL)} is unreachable ({type(exc).__name__}: {exc}); "
            "start one or point RELAY_TEST_POSTGRES_URL at one"
        )
        _unreachable.append(reason)
        _skip_or_fail(reason)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A store URL whose search_path is a fresh schema, dropped after the test."""
    admin = await _admin()
    schema = f"relay_test_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(pg_url, max_size=3) as opened:
        yield opened


async def _outbox_rows(url: str) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, sink, status FROM outbox ORDER BY seq")
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


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
    await (await _admin()).close()  # skip like the others when there is no server
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


async def test_a_failing_commit_stores_nothing(store: PostgresStore, pg_url: str) -> None:
    alert = make_alert()
    broken = replace(make_state("exec-broken"), responder_id=None)  # violates NOT NULL
    bad = alert_cycle(
        [alert, make_window_alert()],
        notify(alert, "oncall", "finops"),
        states=[make_state("exec-good"), broken],
        transitions=[make_transition(make_execution("exec-1", status="failed", ended_at=T0))],
        group_states=[group_state()],
    )

    with pytest.raises(StoreError, match="cannot commit a poll cycle"):
        await store.commit_cycle(bad)

    assert await store.state_count() == 0
    assert await store.transition_count() == 0
    assert await store.get_cursor("prod") is None
    assert (await store.list_alerts()).alerts == []
    assert await _outbox_rows(pg_url) == []
    assert await store.load_group_states("prod") == {}
    good = replace(bad, states=[make_state("exec-good")])
    outcome = await store.commit_cycle(good)
    assert outcome.enqueued == 2
    assert len(outcome.new_alert_ids) == 2
    naive = replace(make_state("exec-2"), last_seen_at=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.commit_cycle(cycle([naive]))


# --- alerts -----------------------------------------------------------------------------


async def test_a_per_execution_alert_fires_once(store: PostgresStore, pg_url: str) -> None:
    first = make_alert(summary="first")
    outcome = await store.commit_cycle(alert_cycle([first], notify(first, "oncall")))
    assert outcome == CommitOutcome(new_alert_ids=frozenset({first.id}), enqueued=1)
    [item] = await store.claim_due("oncall", now=T0, limit=10, lease_s=30)
    await store.mark_delivered("oncall", [item.notification.id], now=T0)

    again = make_alert(summary="second")
    later = T0 + timedelta(minutes=1)
    outcome = await store.commit_cycle(
        alert_cycle([again], notify(again, "oncall", "finops", at=later), at=later)
    )

    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=0)
    stored = await store.get_alert(first.id)
    assert stored is not None
    assert stored.alert == first
    assert (stored.created_at, stored.updated_at) == (T0, later)
    assert stored.notified_sinks == {"oncall"}
    assert await _outbox_rows(pg_url) == [(item.notification.id, "oncall", "delivered")]
    assert await store.get_alert("alert_unknown") is None


async def test_a_windowed_alert_follows_its_group(store: PostgresStore, pg_url: str) -> None:
    firing = make_window_alert(value=0.4)
    twice = notify(firing, "oncall", "finops") + notify(firing, "oncall")
    assert (await store.commit_cycle(alert_cycle([firing], twice))).enqueued == 2
    replayed = notify(firing, "oncall", "finops", at=T0 + timedelta(minutes=5))
    assert await store.commit_cycle(alert_cycle([firing], replayed)) == CommitOutcome()
    reminder_at = T0 + timedelta(minutes=30)
    worse = replace(firing, value=0.6)
    reminder = notify(worse, "oncall", kind="reminder", at=reminder_at, sequence=1)
    outcome = await store.commit_cycle(alert_cycle([worse], reminder, at=reminder_at))
    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=1)
    resolved_at = T0 + timedelta(hours=1)
    resolved = replace(firing, state="resolved", ended_at=resolved_at, value=0.05)
    outcome = await store.commit_cycle(
        alert_cycle(
            [resolved], notify(resolved, "oncall", kind="resolved", at=resolved_at), at=resolved_at
        )
    )

    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=1)
    stored = await store.get_alert(firing.id)
    assert stored is not None
    assert stored.alert == resolved
    assert (stored.created_at, stored.updated_at) == (T0, resolved_at)
    assert [(d.sink, d.kind) for d in stored.deliveries] == [
        ("oncall", "firing"),
        ("finops", "firing"),
        ("oncall", "reminder"),
        ("oncall", "resolved"),
    ]
    # A notification brings its alert even when the cycle does not list it.
    lone = make_alert("exec-9")
    outcome = await store.commit_cycle(alert_cycle([], notify(lone, "oncall")))
    assert outcome == CommitOutcome(new_alert_ids=frozenset({lone.id}), enqueued=1)


async def test_list_alerts_pages_and_filters(store: PostgresStore) -> None:
    alerts = []
    for n in range(0, 9, 2):  # two alerts a cycle: pages must break ties by id
        at = T0 + timedelta(minutes=n)
        batch = [make_alert(f"exec-{n + k:03d}", at=at) for k in range(2)]
        await store.commit_cycle(alert_cycle(batch, at=at))
        alerts += batch
    expected = [a.id for a in sorted(alerts, key=lambda a: (a.started_at, a.id), reverse=True)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_alerts(limit=3, before=cursor)
        seen += [s.alert.id for s in page.alerts]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # New alerts between pages never shift the pages that follow.
        await store.commit_cycle(
            alert_cycle([make_alert(f"new-{len(seen)}")], at=T0 + timedelta(days=1))
        )
    assert seen == expected
    assert await store.list_alerts(limit=0) == (await store.list_alerts(limit=0))
    staging = make_alert("exec-s", source="staging", rule="expensive-execution")
    await store.commit_cycle(alert_cycle([staging], source="staging", at=T0 + timedelta(days=2)))
    assert [s.alert.id for s in (await store.list_alerts(source="staging")).alerts] == [staging.id]
    assert [s.alert.id for s in (await store.list_alerts(rule="expensive-execution")).alerts] == [
        staging.id
    ]
    assert len((await store.list_alerts(state="firing", limit=100)).alerts) == 14
    recent = await store.list_alerts(since=T0 + timedelta(days=1))
    assert len(recent.alerts) == 4
    with pytest.raises(ValueError, match="malformed alert cursor"):
        await store.list_alerts(before="nonsense!")


# --- outbox -----------------------------------------------------------------------------


async def test_claim_lease_retry_and_delivery(store: PostgresStore) -> None:
    first = await _enqueue(store, 3, "oncall", "finops")
    later = await _enqueue(store, 1, "oncall", at=T0 + timedelta(seconds=10), prefix="late")
    oncall = [n for n in first if n.sink == "oncall"]

    claimed = await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)

    assert [item.notification for item in claimed] == oncall
    assert [(i.attempts, i.first_enqueued_at, i.last_error) for i in claimed] == [(0, T0, None)] * 3
    assert await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S) == []
    assert len(await store.claim_due("finops", now=T0, limit=2, lease_s=LEASE_S)) == 2
    mid = T0 + timedelta(seconds=10)
    got = await store.claim_due("oncall", now=mid, limit=10, lease_s=LEASE_S)
    assert [i.notification for i in got] == later
    assert await store.next_due_at("oncall") == T0 + timedelta(seconds=LEASE_S)
    assert await store.next_due_at("nowhere") is None

    # An expired lease gives the row back, with the attempt counted.
    lease_end = T0 + timedelta(seconds=LEASE_S)
    just_before = lease_end - timedelta(microseconds=1)
    assert await store.claim_due("oncall", now=just_before, limit=10, lease_s=LEASE_S) == []
    again = await store.claim_due("oncall", now=lease_end, limit=1, lease_s=LEASE_S)
    assert [(i.notification, i.attempts) for i in again] == [(oncall[0], 1)]

    settled = [oncall[1].id, oncall[2].id, later[0].id]
    assert await store.mark_delivered("oncall", settled, now=T0) == 3

    # A retry sooner than the lease, with a long error kept to its head.
    retry_at = lease_end + timedelta(seconds=2)
    error = "HTTP 503\x00" + "!" * 5000
    assert await store.mark_retry("oncall", oncall[0].id, next_attempt_at=retry_at, error=error)
    assert await store.next_due_at("oncall") == retry_at
    [item] = await store.claim_due("oncall", now=retry_at, limit=1, lease_s=LEASE_S)
    assert item.attempts == 2
    assert item.last_error is not None
    assert item.last_error.startswith("HTTP 503")
    assert len(item.last_error) == MAX_ERROR_CHARS

    ids = [n.id for n in oncall]
    assert await store.mark_delivered("oncall", [*ids, ids[0], "msg_unknown"], now=T0) == 1
    assert await store.mark_delivered("oncall", ids, now=T0) == 0
    assert await store.mark_delivered("finops", [], now=T0) == 0
    assert await store.mark_retry("oncall", ids[0], next_attempt_at=T0, error="x") is False
    assert await store.mark_dead("oncall", ids[0], reason="x", now=T0) is False
    alert = await store.get_alert(oncall[0].alert.id)
    assert alert is not None
    delivery = next(d for d in alert.deliveries if d.sink == "oncall")
    assert (delivery.status, delivery.delivered_at, delivery.attempts) == ("delivered", T0, 3)
    with pytest.raises(ValueError, match="lease_s must be positive"):
        await store.claim_due("oncall", now=T0, limit=1, lease_s=0)
    with pytest.raises(TypeError, match="not one id"):
        await store.mark_delivered("oncall", "msg_1", now=T0)
    with pytest.raises(ValueError, match="naive datetime"):
        await store.claim_due("oncall", now=datetime(2026, 3, 1), limit=1, lease_s=LEASE_S)
    assert await store.claim_due("oncall", now=T0, limit=0, lease_s=LEASE_S) == []


async def test_dead_letters_retry_purge_and_counts(store: PostgresStore) -> None:
    notifications = await _enqueue(store, 3, "oncall", "finops")
    await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)
    await store.claim_due("finops", now=T0, limit=10, lease_s=LEASE_S)
    by_sink = {sink: [n for n in notifications if n.sink == sink] for sink in ("oncall", "finops")}
    for minute, n in enumerate(by_sink["oncall"]):
        dead_at = T0 + timedelta(minutes=minute)
        assert await store.mark_dead("oncall", n.id, reason=f"HTTP 40{minute}", now=dead_at)
    finops_dead = by_sink["finops"][0]
    await store.mark_dead("finops", finops_dead.id, reason="too old", now=T0)
    assert await store.mark_dead("finops", finops_dead.id, reason="again", now=T0) is False

    assert await store.outbox_counts() == {
        "finops": OutboxCounts(pending=2, dead=1),
        "oncall": OutboxCounts(pending=0, dead=3),
    }
    letters = await store.dead_letters(sink="oncall")
    assert [d.notification for d in letters] == by_sink["oncall"][::-1]
    assert [(d.reason, d.attempts) for d in letters] == [
        ("HTTP 402", 1),
        ("HTTP 401", 1),
        ("HTTP 400", 1),
    ]
    assert letters[0].dead_at == T0 + timedelta(minutes=2)
    assert len(await store.dead_letters()) == 4
    assert len(await store.dead_letters(limit=1)) == 1

    replay_at = T0 + timedelta(days=2)
    one = by_sink["oncall"][0].id
    assert await store.retry_dead(now=replay_at, sink="oncall", ids=[one]) == 1
    assert await store.retry_dead(now=replay_at, sink="oncall", ids=[one]) == 0
    assert await store.retry_dead(now=replay_at, ids=[]) == 0
    [item] = await store.claim_due("oncall", now=replay_at, limit=10, lease_s=LEASE_S)
    assert (item.notification.id, item.attempts, item.first_enqueued_at) == (one, 0, replay_at)
    assert item.last_error == "HTTP 400"
    assert await store.retry_dead(now=replay_at, sink="finops") == 1
    assert await store.outbox_counts() == {
        "finops": OutboxCounts(pending=3, dead=0),
        "oncall": OutboxCounts(pending=1, dead=2),
    }
    assert await store.purge_dead(ids=["msg_unknown"]) == 0
    assert await store.purge_dead(sink="finops") == 0
    assert await store.purge_dead(sink="oncall", ids=[by_sink["oncall"][1].id]) == 1
    # A late success rescues a dead letter.
    assert await store.mark_delivered("oncall", [by_sink["oncall"][2].id], now=T0) == 1
    assert await store.dead_letters() == []
    assert await store.purge_dead() == 0


async def test_mark_silenced_settles_pending_rows(store: PostgresStore, pg_url: str) -> None:
    notifications = await _enqueue(store, 2, "oncall")
    ids = [n.id for n in notifications]
    assert await store.mark_silenced("oncall", ids, reason="sil_1 matched", now=T0) == 2
    assert await store.mark_silenced("oncall", ids, reason="again", now=T0) == 0
    assert await store.mark_silenced("oncall", [], reason="x", now=T0) == 0
    assert await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S) == []
    assert await store.outbox_counts() == {}
    assert [r[2] for r in await _outbox_rows(pg_url)] == ["silenced", "silenced"]
    stored = await store.get_alert(notifications[0].alert.id)
    assert stored is not None
    [delivery] = stored.deliveries
    assert (delivery.status, delivery.last_error, delivery.delivered_at) == (
        "silenced",
        "sil_1 matched",
        T0,
    )
    # Settled rows are pruned like delivered ones.
    result = await store.prune(before=T0 + timedelta(seconds=1))
    assert result.notifications_deleted == 2


async def test_a_resolve_never_overtakes_its_firing(store: PostgresStore) -> None:
    firing_alert = make_window_alert(group_key="responder_id=r1")
    [firing] = notify(firing_alert, "oncall")
    await store.commit_cycle(alert_cycle([firing_alert], [firing]))
    await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)
    await store.mark_retry(
        "oncall", firing.id, next_attempt_at=T0 + timedelta(minutes=5), error="HTTP 503"
    )
    resolved_at = T0 + timedelta(minutes=1)
    resolved_alert = make_window_alert(group_key="responder_id=r1", state="resolved")
    [resolved] = notify(resolved_alert, "oncall", kind="resolved", at=resolved_at)
    await store.commit_cycle(alert_cycle([resolved_alert], [resolved], at=resolved_at))

    assert await store.claim_due("oncall", now=resolved_at, limit=10, lease_s=LEASE_S) == []
    back = T0 + timedelta(minutes=5)
    [retried] = await store.claim_due("oncall", now=back, limit=10, lease_s=LEASE_S)
    assert retried.notification.id == firing.id
    await store.mark_delivered("oncall", [firing.id], now=back)
    [after] = await store.claim_due("oncall", now=back, limit=10, lease_s=LEASE_S)
    assert after.notification.id == resolved.id


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


# --- silences, group states, message refs -----------------------------------------------


async def test_silences(store: PostgresStore) -> None:
    silence = make_silence("sil_x", expired_at=T0 + timedelta(minutes=5), origin="config")
    assert await store.add_silence(silence) is True
    assert await store.get_silence("sil_x") == silence
    assert await store.add_silence(replace(silence, comment="other")) is False
    assert await store.get_silence("sil_unknown") is None

    active = make_silence("sil_active")
    pending = make_silence("sil_pending", starts_in=timedelta(hours=2))
    ended = make_silence("sil_ended", starts_in=-timedelta(hours=2))
    expired = make_silence("sil_expired", expired_at=T0 - timedelta(seconds=1))
    for s in (pending, ended, expired, active):
        await store.add_silence(s)
    live = await store.list_silences(now=T0)
    assert [s.id for s in live] == ["sil_active", "sil_x", "sil_pending"]
    every = await store.list_silences(now=T0, include_expired=True)
    assert [s.id for s in every] == [
        "sil_ended", "sil_active", "sil_expired", "sil_x", "sil_pending",
    ]  # fmt: skip

    at = T0 + timedelta(minutes=3)
    assert await store.expire_silence("sil_active", now=at) is True
    assert await store.get_silence("sil_active") == replace(active, expired_at=at)
    assert await store.expire_silence("sil_active", now=at) is False
    assert await store.expire_silence("sil_ended", now=T0) is False
    assert await store.expire_silence("sil_unknown", now=T0) is False

    result = await store.prune(before=T0 + timedelta(days=7))
    assert result.silences_deleted == 5
    assert await store.list_silences(now=T0, include_expired=True) == []


async def test_group_states_round_trip_replace_and_prune(store: PostgresStore) -> None:
    one, two = group_state("responder_id=resp-1"), group_state("responder_id=resp-2", value=None)
    never = group_state("responder_id=c", rule="credit-burn", firing=False, episode=0, value=None)
    await store.commit_cycle(alert_cycle(group_states=[one, two, never]))
    staging = group_state(source="staging")
    await store.commit_cycle(alert_cycle(group_states=[staging], source="staging"))

    assert await store.load_group_states("prod") == {
        ("agent-failure-rate", "responder_id=resp-1"): one,
        ("agent-failure-rate", "responder_id=resp-2"): two,
        ("credit-burn", "responder_id=c"): never,
    }
    resolved = replace(one, firing=False, resolved_at=T0 + timedelta(hours=1), value=0.01)
    await store.commit_cycle(alert_cycle(group_states=[resolved]))
    loaded = await store.load_group_states("prod")
    assert loaded[("agent-failure-rate", "responder_id=resp-1")] == resolved
    assert await store.load_group_states("staging") == {
        ("agent-failure-rate", staging.group_key): staging
    }

    result = await store.prune(before=T0 + timedelta(days=7))
    assert result.group_states_deleted == 1  # only the one that never fired
    assert len(await store.load_group_states("prod")) == 2


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


async def test_prune_keeps_alerts_still_to_deliver(store: PostgresStore) -> None:
    delivered, pending, dead, silenced = (make_alert(f"exec-{n}") for n in range(4))
    firing_window = make_window_alert(group_key="responder_id=resp-1")
    resolved_window = make_window_alert(group_key="responder_id=resp-2", state="resolved")
    notifications = [
        *notify(delivered, "oncall"),
        *notify(pending, "oncall"),
        *notify(dead, "oncall", "finops"),
    ]
    await store.commit_cycle(
        alert_cycle(
            [delivered, pending, dead, silenced, firing_window, resolved_window], notifications
        )
    )
    ids = {n.alert.id: n.id for n in notifications}
    await store.mark_delivered("oncall", [ids[delivered.id], ids[dead.id]], now=T0)
    await store.claim_due("finops", now=T0, limit=10, lease_s=30)
    await store.mark_dead("finops", ids[dead.id], reason="410 Gone", now=T0)

    result = await store.prune(before=T0 + timedelta(days=7))

    assert (result.alerts_deleted, result.notifications_deleted) == (3, 2)
    left = {s.alert.id for s in (await store.list_alerts()).alerts}
    assert left == {pending.id, dead.id, firing_window.id}


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
