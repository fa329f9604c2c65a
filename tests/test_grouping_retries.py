"""Retried route group messages (issue 14, item 3, after review): a message that was
attempted is retried whole, in one request, under its stamped `webhook-id`, whatever
failed (the receiver, or the store after the receiver took it); a member settled
meanwhile (silenced) leaves it and the id stays; and a route group that is due does not
take a sink's ungrouped notifications before the sink's own `group_wait`.
Real outbox (SQLite and PostgreSQL), real loopback receivers, a manual clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.domain.alerts import Notification
from relay.domain.grouping import group_message_id
from relay.domain.silences import Silence, config_silences
from relay.errors import StoreError
from relay.settings import SilenceSettings
from relay.sim import ManualClock
from relay.store import PostgresStore, Store
from tests import store_backends
from tests.delivery_kit import T0, Receiver, enqueue, make_alert
from tests.grouping_kit import WAIT_S, FlakyOutbox, Recorder, group_of, grouped, webhook, worker_on
from tests.test_grouping_delivery import arrive, at, run_until_idle

backend, store = store_backends.backend, store_backends.store


async def test_a_store_error_after_the_send_retries_the_message_whole_under_its_id(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    flaky = FlakyOutbox(store, fail="mark_delivered")
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker = worker_on(sink, flaky, clock)  # type: ignore[arg-type]
        try:
            burst = [grouped(alert=make_alert(execution_id=f"e{i}")) for i in range(4)]
            await arrive(store, burst)
            clock.set(at(WAIT_S))
            with pytest.raises(StoreError):
                await worker.step()  # the receiver answered 200; marking it failed
            await run_until_idle(worker, clock, until=at(3600))
        finally:
            await sink.aclose()
    ids = tuple(n.id for n in burst)
    stamped = group_message_id(burst[0].group.key, ids)  # type: ignore[union-attr]
    assert flaky.failed == 1
    assert [(s.webhook_id, s.ids) for s in recorder.seen] == [(stamped, ids), (stamped, ids)]
    assert {r.json()["id"] for r in receiver.requests} == {stamped}
    assert await store.outbox_counts() == {}


async def test_a_stamped_message_is_claimed_whole_when_its_members_fall_due_apart(
    store: Store,
) -> None:
    burst = [grouped(alert=make_alert(execution_id=f"e{i}")) for i in range(3)]
    await arrive(store, burst)
    claimed = await store.claim_due("hook", now=at(WAIT_S), limit=10, lease_s=30)
    ids = [item.notification.id for item in claimed]
    message_id = group_message_id(burst[0].group.key, ids)  # type: ignore[union-attr]
    await store.stamp_messages("hook", {message_id: ids}, now=at(WAIT_S))
    # Put back apart, as a failed step once did: 5 s, 50 s and 500 s later.
    for n, after_s in zip(burst, (5, 50, 500), strict=True):
        await store.mark_retry(
            "hook", n.id, next_attempt_at=at(WAIT_S + after_s), error="the step failed"
        )
    again = await store.claim_due("hook", now=at(WAIT_S + 5), limit=1, lease_s=30)
    assert sorted(item.notification.id for item in again) == sorted(ids)
    assert {item.message_id for item in again} == {message_id}
    # Leased whole, too: none of them is claimed again while the lease runs.
    assert await store.claim_due("hook", now=at(WAIT_S + 20), limit=10, lease_s=30) == []


async def test_a_member_silenced_before_the_retry_leaves_the_message_and_the_id_stays(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock, statuses=(503,))
    quiet = config_silences([
        SilenceSettings.model_validate({
            "matchers": ['source="staging"'], "starts": T0, "ends": T0 + timedelta(days=1)
        })
    ])  # fmt: skip
    active: list[Silence] = []

    async def in_force(_at: datetime) -> list[Silence]:
        return active

    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker = worker_on(sink, store, clock, silences=in_force)
        try:
            burst = [
                grouped(alert=make_alert(execution_id="e0")),
                grouped(alert=make_alert(execution_id="e1", source="staging")),
                grouped(alert=make_alert(execution_id="e2")),
            ]
            await arrive(store, burst)
            clock.set(at(WAIT_S))
            assert (await worker.step()).outcomes == {"retry": 3}
            active.extend(quiet)  # a silence added while the message waits for its retry
            await run_until_idle(worker, clock, until=at(3600))
        finally:
            await sink.aclose()
    every = tuple(n.id for n in burst)
    stamped = group_message_id(burst[0].group.key, every)  # type: ignore[union-attr]
    assert [(s.webhook_id, s.ids, s.status) for s in recorder.seen] == [
        (stamped, every, 503),
        (stamped, (burst[0].id, burst[2].id), 200),
    ]
    assert receiver.requests[1].json()["id"] == stamped
    assert await store.outbox_counts() == {}


async def test_a_due_group_does_not_take_ungrouped_alerts_before_the_sinks_group_wait(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h", group_wait="60s")
        worker = worker_on(sink, store, clock)
        try:
            group = grouped(alert=make_alert(execution_id="g1"))  # its route waits 10 s
            await arrive(store, [group])
            clock.set(at(9))
            plain = Notification.about(
                make_alert(execution_id="u1"), sink="hook", kind="firing", created_at=at(9)
            )
            await arrive(store, [plain])
            await run_until_idle(worker, clock, until=at(3600))
        finally:
            await sink.aclose()
    assert [(s.at, s.ids) for s in recorder.seen] == [
        (at(10), (group.id,)),
        (at(69), (plain.id,)),
    ]


async def test_a_due_group_and_a_ready_digest_go_in_one_step(store: Store) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h", group_wait="5s")
        worker = worker_on(sink, store, clock)
        try:
            plain = Notification.about(
                make_alert(execution_id="u1"), sink="hook", kind="firing", created_at=T0
            )
            group = grouped(group_of(wait_s=5), alert=make_alert(execution_id="g1"))
            await arrive(store, [plain, group])
            clock.set(at(5))
            assert (await worker.step()).outcomes == {"delivered": 2}
        finally:
            await sink.aclose()
    assert sorted(s.ids for s in recorder.seen) == sorted([(plain.id,), (group.id,)])


pg_url = store_backends.pg_url
BLOCKED_BY = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"


async def test_concurrent_cycles_lock_groups_in_one_order_and_do_not_deadlock(
    pg_url: str,
) -> None:
    """Another transaction holds the first group (in key order) and then wants the
    second, as a concurrent cycle of the same groups does; a cycle whose batch names
    them the other way round must wait for it, not hold the second (a deadlock)."""
    first, second = sorted([group_of("resp-a"), group_of("resp-b")], key=lambda g: g.key)
    async with PostgresStore(pg_url, max_size=3) as store:
        await arrive(store, [grouped(first), grouped(second)])  # a pending message each
        other = await asyncpg.connect(pg_url)
        watcher = await asyncpg.connect(pg_url)
        try:
            pid = await other.fetchval("SELECT pg_backend_pid()")
            lock = "SELECT seq FROM outbox WHERE group_key = $1 AND status = 'pending' FOR UPDATE"
            async with other.transaction():
                await other.execute("SET LOCAL lock_timeout = '10s'")
                await other.fetch(lock, first.key)
                batch = [grouped(second, at=at(1)), grouped(first, at=at(1))]
                cycle = asyncio.create_task(enqueue(store, batch, at=at(1)))
                for _ in range(200):  # until the cycle waits for `other`'s lock
                    waiting = await watcher.fetchval(BLOCKED_BY, pid)
                    if waiting or cycle.done():
                        break
                    await asyncio.sleep(0.05)
                assert waiting == 1, "the cycle should wait for the first group's lock"
                await other.fetch(lock, second.key)  # free: the cycle holds nothing yet
            assert await cycle == 2
        finally:
            await asyncio.gather(other.close(), watcher.close())
        due = await store.claim_due("hook", now=at(WAIT_S), limit=10, lease_s=30)
        assert len(due) == 4  # each joined its group's pending message, due at 10 s


async def dead_message(store: Store, *, delivered: int) -> tuple[list[Notification], str]:
    """A stamped message of three whose first `delivered` members were delivered and the
    others went to the dead letters."""
    members = [grouped(alert=make_alert(execution_id=f"e{i}")) for i in range(3)]
    await arrive(store, members)
    claimed = await store.claim_due("hook", now=at(WAIT_S), limit=10, lease_s=30)
    ids = [item.notification.id for item in claimed]
    message_id = group_message_id(members[0].group.key, ids)  # type: ignore[union-attr]
    await store.stamp_messages("hook", {message_id: ids}, now=at(WAIT_S))
    if delivered:
        await store.mark_delivered("hook", ids[:delivered], now=at(WAIT_S))
    for n in ids[delivered:]:
        await store.mark_dead("hook", n, reason="gave up", now=at(WAIT_S))
    by_id = {n.id: n for n in members}
    return [by_id[i] for i in ids], message_id


@pytest.mark.parametrize("delivered", [0, 1])
async def test_a_replayed_member_keeps_its_message_id_unless_the_rest_was_delivered(
    store: Store, delivered: int
) -> None:
    clock = ManualClock(at(100))
    recorder = Recorder(clock)
    members, message_id = await dead_message(store, delivered=delivered)
    assert await store.retry_dead(now=clock(), sink="hook") == 3 - delivered
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        try:
            await run_until_idle(worker_on(sink, store, clock), clock, until=at(3600))
        finally:
            await sink.aclose()
    replayed = tuple(n.id for n in members[delivered:])
    key = members[0].group.key  # type: ignore[union-attr]
    # The whole message, replayed, is the message again (a receiver that took it drops
    # it); a straggler of a delivered message is a new one, or it would be dropped.
    expected = message_id if not delivered else group_message_id(key, replayed)
    assert [(s.webhook_id, s.ids) for s in recorder.seen] == [(expected, replayed)]
    assert expected != message_id or not delivered
    assert await store.outbox_counts() == {}
