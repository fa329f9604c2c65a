"""The outbox: claims with leases, retries, dead letters, and concurrent claimers."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from relay.domain.alerts import Notification
from relay.store import OutboxCounts, SqliteStore, Store
from relay.store import sql as statements
from relay.store.sql_outbox import MAX_ERROR_CHARS, dead_query
from relay.store.sqlite.dialect import SQLITE
from tests import store_backends
from tests.store_backends import Backend
from tests.test_store_alerts import alert_cycle, make_alert, make_window_alert, notify
from tests.test_store_sqlite import T0

# Within what PostgreSQL grants at once (longer leases are renewed: test_store_claims.py).
LEASE_S = 15.0

# Every test taking `store` runs on SQLite and on PostgreSQL.
backend, store = store_backends.backend, store_backends.store


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A SQLite file, for the tests that are about SQLite only."""
    return tmp_path / "relay.db"


async def _enqueue(
    store: Store, count: int, *sinks: str, at: datetime = T0, prefix: str = "exec"
) -> list[Notification]:
    alerts = [make_alert(f"{prefix}-{n:04d}", at=at) for n in range(count)]
    notifications = [n for a in alerts for n in notify(a, *sinks, at=at)]
    outcome = await store.commit_cycle(alert_cycle(alerts, notifications, at=at))
    assert outcome.enqueued == len(notifications)
    return notifications


async def test_claim_leases_due_rows_in_enqueue_order(store: Store) -> None:
    first = await _enqueue(store, 3, "oncall", "finops")
    later = await _enqueue(store, 1, "oncall", at=T0 + timedelta(seconds=10), prefix="late")
    oncall = [n for n in first if n.sink == "oncall"]

    claimed = await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)

    assert [item.notification for item in claimed] == oncall
    assert [(i.attempts, i.first_enqueued_at, i.last_error) for i in claimed] == [(0, T0, None)] * 3
    # Leased rows are nobody else's until the lease ends; other sinks are untouched.
    assert await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S) == []
    assert len(await store.claim_due("finops", now=T0, limit=10, lease_s=LEASE_S)) == 3
    # The later row falls due at its creation time, before the leases end.
    mid = T0 + timedelta(seconds=10)
    assert [
        i.notification for i in await store.claim_due("oncall", now=mid, limit=10, lease_s=LEASE_S)
    ] == later
    assert await store.next_due_at("oncall") == T0 + timedelta(seconds=LEASE_S)


async def test_an_expired_lease_makes_the_row_claimable_again(store: Store) -> None:
    [notification] = await _enqueue(store, 1, "oncall")
    [first] = await store.claim_due("oncall", now=T0, limit=1, lease_s=LEASE_S)
    # The claimer died: nobody marks the row. Just before the lease ends it is still
    # leased; at its end it comes back, with the attempt counted.
    just_before = T0 + timedelta(seconds=LEASE_S) - timedelta(microseconds=1)
    assert await store.claim_due("oncall", now=just_before, limit=1, lease_s=LEASE_S) == []
    assert await store.next_due_at("oncall") == T0 + timedelta(seconds=LEASE_S)
    at_end = T0 + timedelta(seconds=LEASE_S)
    [second] = await store.claim_due("oncall", now=at_end, limit=1, lease_s=LEASE_S)
    assert second.notification == first.notification == notification
    assert (first.attempts, second.attempts) == (0, 1)


async def test_limit_and_arguments(store: Store) -> None:
    await _enqueue(store, 5, "oncall")
    assert len(await store.claim_due("oncall", now=T0, limit=2, lease_s=LEASE_S)) == 2
    assert await store.claim_due("oncall", now=T0, limit=0, lease_s=LEASE_S) == []
    assert len(await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)) == 3
    with pytest.raises(ValueError, match="lease_s must be positive"):
        await store.claim_due("oncall", now=T0, limit=1, lease_s=0)
    with pytest.raises(TypeError, match="not one id"):
        await store.mark_delivered("oncall", "msg_1", now=T0)
    with pytest.raises(TypeError, match="not one id"):
        await store.retry_dead(now=T0, ids="msg_1")
    with pytest.raises(ValueError, match="naive datetime"):
        await store.claim_due("oncall", now=datetime(2026, 3, 1), limit=1, lease_s=LEASE_S)


async def test_not_due_before_it_was_created(store: Store) -> None:
    future = T0 + timedelta(seconds=10)
    await _enqueue(store, 1, "oncall", at=future)
    assert await store.claim_due("oncall", now=T0, limit=1, lease_s=LEASE_S) == []
    assert await store.next_due_at("oncall") == future
    assert await store.next_due_at("nowhere") is None


async def test_retry_reschedules_with_the_error(store: Store) -> None:
    [notification] = await _enqueue(store, 1, "oncall")
    await store.claim_due("oncall", now=T0, limit=1, lease_s=LEASE_S)
    retry_at = T0 + timedelta(seconds=2)  # sooner than the lease: the worker decides

    # A long error is kept to its head; a NUL byte (PostgreSQL text refuses it) is no failure.
    error = "HTTP 503\x00" + "!" * 5000
    marked = await store.mark_retry(
        "oncall", notification.id, next_attempt_at=retry_at, error=error
    )

    assert marked is True
    assert await store.next_due_at("oncall") == retry_at
    assert (
        await store.claim_due(
            "oncall", now=retry_at - timedelta(microseconds=1), limit=1, lease_s=1
        )
        == []
    )
    [item] = await store.claim_due("oncall", now=retry_at, limit=1, lease_s=LEASE_S)
    assert item.attempts == 1
    assert item.last_error is not None
    assert item.last_error.startswith("HTTP 503")
    assert len(item.last_error) == MAX_ERROR_CHARS
    assert item.first_enqueued_at == T0  # max_age counts from the first enqueue


async def test_delivered_is_final(store: Store) -> None:
    notifications = await _enqueue(store, 2, "oncall")
    ids = [n.id for n in notifications]
    await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)

    assert await store.mark_delivered("oncall", [*ids, ids[0], "msg_unknown"], now=T0) == 2
    assert await store.mark_delivered("oncall", ids, now=T0) == 0
    assert await store.mark_delivered("finops", ids, now=T0) == 0  # per sink
    assert await store.mark_delivered("oncall", [], now=T0) == 0
    later = T0 + timedelta(hours=1)
    assert await store.claim_due("oncall", now=later, limit=10, lease_s=LEASE_S) == []
    assert await store.mark_retry("oncall", ids[0], next_attempt_at=later, error="x") is False
    assert await store.mark_dead("oncall", ids[0], reason="x", now=later) is False
    assert await store.next_due_at("oncall") is None
    assert await store.outbox_counts() == {}
    alert = await store.get_alert(notifications[0].alert.id)
    assert alert is not None
    [delivery] = alert.deliveries
    assert (delivery.status, delivery.delivered_at, delivery.attempts) == ("delivered", T0, 1)


async def test_dead_letters_retry_and_purge(store: Store) -> None:
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
    assert [d.notification for d in letters] == by_sink["oncall"][::-1]  # newest death first
    assert [(d.reason, d.attempts) for d in letters] == [
        ("HTTP 402", 1),
        ("HTTP 401", 1),
        ("HTTP 400", 1),
    ]
    assert letters[0].dead_at == T0 + timedelta(minutes=2)
    assert letters[0].first_enqueued_at == T0
    assert len(await store.dead_letters()) == 4
    assert len(await store.dead_letters(limit=1)) == 1
    assert await store.dead_letters(limit=0) == []

    # Replay one id, then a whole sink: back to pending, due now, attempts reset, and
    # max_age starts over from the replay.
    replay_at = T0 + timedelta(days=2)
    one = by_sink["oncall"][0].id
    assert await store.retry_dead(now=replay_at, sink="oncall", ids=[one]) == 1
    assert await store.retry_dead(now=replay_at, sink="oncall", ids=[one]) == 0
    assert await store.retry_dead(now=replay_at, ids=[]) == 0
    [item] = await store.claim_due("oncall", now=replay_at, limit=10, lease_s=LEASE_S)
    assert (item.notification.id, item.attempts, item.first_enqueued_at) == (one, 0, replay_at)
    assert item.last_error == "HTTP 400"  # kept, for whoever looks next
    assert await store.retry_dead(now=replay_at, sink="finops") == 1
    assert await store.outbox_counts() == {
        "finops": OutboxCounts(pending=3, dead=0),
        "oncall": OutboxCounts(pending=1, dead=2),
    }

    assert await store.purge_dead(ids=["msg_unknown"]) == 0
    assert await store.purge_dead(sink="finops") == 0
    assert await store.purge_dead(sink="oncall", ids=[by_sink["oncall"][1].id]) == 1
    assert await store.purge_dead() == 1
    assert await store.dead_letters() == []
    assert await store.outbox_counts() == {
        "finops": OutboxCounts(pending=3, dead=0),
        "oncall": OutboxCounts(pending=1, dead=0),
    }
    # A purged notification is gone for good: replaying its cycle enqueues it again
    # only because the row is gone, which is what purging means.


async def test_a_late_success_rescues_a_dead_letter(store: Store) -> None:
    [notification] = await _enqueue(store, 1, "oncall")
    await store.claim_due("oncall", now=T0, limit=1, lease_s=LEASE_S)
    await store.mark_dead("oncall", notification.id, reason="max_age", now=T0)
    assert await store.mark_delivered("oncall", [notification.id], now=T0) == 1
    assert await store.dead_letters() == []


async def test_mark_silenced_settles_pending_rows(store: Store, backend: Backend) -> None:
    notifications = await _enqueue(store, 2, "oncall")
    ids = [n.id for n in notifications]
    assert await store.mark_silenced("oncall", ids, reason="sil_1 matched", now=T0) == 2
    assert await store.mark_silenced("oncall", ids, reason="again", now=T0) == 0
    assert await store.mark_silenced("oncall", [], reason="x", now=T0) == 0
    assert await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S) == []
    assert await store.outbox_counts() == {}
    assert [r[2] for r in await backend.outbox_rows()] == ["silenced", "silenced"]
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


async def test_many_rows_and_windowed_notifications(store: Store) -> None:
    await _enqueue(store, 600, "oncall")  # more than one statement binds at once
    window = make_window_alert()
    await store.commit_cycle(
        alert_cycle([window], notify(window, "oncall", kind="reminder", sequence=4))
    )
    claimed = await store.claim_due("oncall", now=T0, limit=1000, lease_s=LEASE_S)
    assert len(claimed) == 601
    ids = [i.notification.id for i in claimed]
    assert len(set(ids)) == 601
    assert await store.mark_delivered("oncall", ids, now=T0) == 601
    assert claimed[-1].notification.kind == "reminder"


async def _claim_rounds(
    store: Store, *, rounds: int, limit: int, barrier: asyncio.Barrier
) -> list[str]:
    got: list[str] = []
    for _ in range(rounds):
        # Every claimer starts each round together, so the claims really race.
        await barrier.wait()
        batch = await store.claim_due("oncall", now=T0, limit=limit, lease_s=LEASE_S)
        got += [item.notification.id for item in batch]
    return got


async def test_two_claimers_never_claim_the_same_row(db_path: Path) -> None:
    first, second = SqliteStore(db_path), SqliteStore(db_path)
    await first.open()
    await second.open()
    try:
        notifications = await _enqueue(first, 300, "oncall")
        # Two processes' worth of claimers (two connections to one file), each with two
        # concurrent tasks on its own connection: 4 x 7 rows a round, 11 rounds to drain.
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
        assert tasks[0].result() + tasks[2].result()  # both connections got rows
        assert tasks[1].result() + tasks[3].result()
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_outbox_queries_use_indexes(tmp_path: Path) -> None:
    path = tmp_path / "plans.db"
    async with SqliteStore(path):
        pass
    conn = sqlite3.connect(path)
    due, grouped_due = (
        statements.DUE_SELECT.format(grouped=statements.grouped_filter(grouped))
        for grouped in (None, True)
    )
    try:
        queries = {
            SQLITE.render(due)[0]: 3,
            SQLITE.render(grouped_due)[0]: 3,
            SQLITE.render(statements.NEXT_DUE)[0]: 1,
            SQLITE.render(statements.COUNT_PENDING)[0]: 0,
            SQLITE.render(statements.COUNT_DEAD)[0]: 0,
            SQLITE.render(dead_query(sink="oncall", limit=5, dialect=SQLITE)[0])[0]: 2,
        }
        for sql, arity in queries.items():
            plan = " / ".join(
                row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", ("x",) * arity)
            )
            assert "USING INDEX outbox_" in plan, (sql, plan)
            assert "TEMP B-TREE" not in plan, (sql, plan)
    finally:
        conn.close()


async def test_a_resolve_never_overtakes_its_firing(store: Store) -> None:
    firing_alert = make_window_alert(group_key="responder_id=r1")
    [firing] = notify(firing_alert, "oncall")
    await store.commit_cycle(alert_cycle([firing_alert], [firing]))
    [claimed] = await store.claim_due("oncall", now=T0, limit=10, lease_s=LEASE_S)
    # The sink is down: the firing is retried later and later...
    await store.mark_retry(
        "oncall", firing.id, next_attempt_at=T0 + timedelta(minutes=5), error="HTTP 503"
    )
    # ... while the group clears and its resolve is queued, due at once.
    resolved_at = T0 + timedelta(minutes=1)
    resolved_alert = make_window_alert(group_key="responder_id=r1", state="resolved")
    [resolved] = notify(resolved_alert, "oncall", kind="resolved", at=resolved_at)
    await store.commit_cycle(alert_cycle([resolved_alert], [resolved], at=resolved_at))

    assert await store.claim_due("oncall", now=resolved_at, limit=10, lease_s=LEASE_S) == []
    back = T0 + timedelta(minutes=5)
    [retried] = await store.claim_due("oncall", now=back, limit=10, lease_s=LEASE_S)
    assert retried.notification.id == claimed.notification.id == firing.id
    await store.mark_delivered("oncall", [firing.id], now=back)
    [after] = await store.claim_due("oncall", now=back, limit=10, lease_s=LEASE_S)
    assert after.notification.id == resolved.id
