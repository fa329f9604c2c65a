"""Route groups delivered (issue 14, item 3): a group's alerts arriving within
`group_wait` go out as one message, a later one joins the next message rather than
making a burst, and a retried group message keeps its members and its `webhook-id`.
Real outbox (SQLite and PostgreSQL), real loopback receivers, the worker on a manual
clock one `step()` at a time."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

from relay.domain.alerts import Notification
from relay.sim import ManualClock
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, Receiver, Reply, enqueue, make_notification
from tests.grouping_kit import WAIT_S, Recorder, group_of, grouped, webhook, worker_on

backend, store = store_backends.backend, store_backends.store


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def arrive(store: Store, notifications: list[Notification]) -> None:
    """Each notification in a cycle of its own, at its creation time."""
    for n in notifications:
        await enqueue(store, [n], at=n.created_at)  # type: ignore[arg-type]


async def run_until_idle(worker: object, clock: ManualClock, *, until: datetime) -> None:
    """Step, jumping the clock to each wake-up not after `until`."""
    step = worker.step  # type: ignore[attr-defined]
    for _ in range(200):
        result = await step()
        if result.claimed:
            continue
        wake = result.next_wake_at
        if wake is None or wake > until:
            return
        clock.set(max(clock(), wake))
    raise AssertionError("the worker did not settle")


async def test_five_alerts_within_group_wait_are_one_request_and_a_sixth_the_next(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker = worker_on(sink, store, clock)
        try:
            burst = [grouped(at=at(2 * i)) for i in range(5)]  # 0, 2, 4, 6 and 8 s
            for n in burst:
                clock.set(n.created_at)
                await arrive(store, [n])
                result = await worker.step()
                assert result.claimed == 0
                assert result.next_wake_at == at(WAIT_S)  # the first one's group_wait
            clock.set(at(WAIT_S))
            assert (await worker.step()).outcomes == {"delivered": 5}
            # A sixth, 2 s after the message went out: the next message, 10 s after it.
            clock.set(at(12))
            late = grouped(at=at(12))
            await arrive(store, [late])
            assert (await worker.step()).next_wake_at == at(20)
            await run_until_idle(worker, clock, until=at(60))
        finally:
            await sink.aclose()
    assert [(s.at, s.ids, s.status) for s in recorder.seen] == [
        (at(10), tuple(n.id for n in burst), 200),
        (at(20), (late.id,), 200),
    ]
    body = receiver.requests[0].json()
    assert body["type"] == "alert.group"
    assert body["id"] == receiver.requests[0].headers["webhook-id"]
    assert body["summary"] == "5 alerts: execution-failed for responder_id=resp-1"
    assert body["group"] | {"alert_ids": None, "notification_ids": None} == {
        "key": group_of().key,
        "route": "routes[0]",
        "values": {"responder_id": "resp-1"},
        "count": 5,
        "alert_ids": None,
        "notification_ids": None,
    }
    assert body["group"]["alert_ids"] == [n.alert.id for n in burst]
    assert [n["alert"]["id"] for n in body["notifications"]] == [n.alert.id for n in burst]
    # One shape for a route's messages, even when a group has one alert.
    assert receiver.requests[1].json()["type"] == "alert.group"
    assert receiver.requests[1].json()["group"]["count"] == 1


async def test_a_retried_group_message_keeps_its_id_and_members(store: Store) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock, statuses=(503,))
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker = worker_on(sink, store, clock)
        try:
            burst = [grouped(at=at(i)) for i in range(5)]
            await arrive(store, burst)
            clock.set(at(WAIT_S))
            assert (await worker.step()).outcomes == {"retry": 5}
            # One more of the group arrives while the message waits for its retry.
            clock.advance(seconds=0.5)
            newcomer = grouped(at=clock())
            await arrive(store, [newcomer])
            await run_until_idle(worker, clock, until=at(120))
        finally:
            await sink.aclose()
    first, retry, following = recorder.seen
    assert (first.status, retry.status, following.status) == (503, 200, 200)
    assert retry.webhook_id == first.webhook_id
    assert retry.ids == first.ids == tuple(n.id for n in burst)
    assert following.ids == (newcomer.id,)
    assert following.webhook_id != first.webhook_id
    # Not a burst: the newcomer went WAIT_S after the message first went out.
    assert following.at >= first.at + timedelta(seconds=WAIT_S)
    assert Counter(recorder.delivered()) == Counter(n.id for n in [*burst, newcomer])


async def test_groups_and_ungrouped_never_share_a_message(store: Store) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h", max_alerts_per_request=10)
        worker = worker_on(sink, store, clock)
        try:
            first = [grouped(group_of("resp-1")) for _ in range(3)]
            second = [grouped(group_of("resp-2")) for _ in range(2)]
            loose = [make_notification(created_at=at(WAIT_S)) for _ in range(2)]
            await arrive(store, [first[0], second[0], *first[1:], second[1], *loose])
            clock.set(at(WAIT_S))
            assert (await worker.step()).messages == 3
        finally:
            await sink.aclose()
    assert sorted((s.group_key or "", s.ids) for s in recorder.seen) == sorted(
        [
            (group_of("resp-1").key, tuple(n.id for n in first)),
            (group_of("resp-2").key, tuple(n.id for n in second)),
            ("", tuple(n.id for n in loose)),
        ]
    )


async def test_a_big_group_goes_in_messages_of_100_whatever_the_claim_limit(
    store: Store,
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    async with Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")  # max_alerts_per_request 1
        worker = worker_on(sink, store, clock, messages_per_step=4)
        try:
            burst = [grouped() for _ in range(130)]
            await enqueue(store, burst, at=T0)  # type: ignore[arg-type]
            clock.set(at(WAIT_S))
            result = await worker.step()
        finally:
            await sink.aclose()
    assert result.outcomes == {"delivered": 130}
    assert [len(s.ids) for s in recorder.seen] == [100, 30]
    assert [i for s in recorder.seen for i in s.ids] == [n.id for n in burst]


async def test_a_claim_completes_the_groups_it_touches(store: Store) -> None:
    burst = [grouped() for _ in range(4)]
    loose = make_notification(created_at=T0)
    await enqueue(store, [*burst, loose], at=T0)  # type: ignore[arg-type]
    assert await store.next_due_at("hook") == T0  # the ungrouped one
    first = await store.claim_due("hook", now=T0, limit=1, lease_s=30)
    assert [i.notification.id for i in first] == [loose.id]
    taken = await store.claim_due("hook", now=at(WAIT_S), limit=1, lease_s=30)
    assert [i.notification.id for i in taken] == [n.id for n in burst]
    assert all(i.message_id is None for i in taken)


async def test_a_crashed_group_message_comes_back_whole_under_its_id(
    backend: store_backends.Backend,
) -> None:
    """Killed mid-request: the new process sends the same members under the same id,
    and an alert of the group that arrived meanwhile goes in the next message."""
    clock = ManualClock(T0)
    recorder = Recorder(clock)
    stalled = asyncio.Event()

    def reply(request: object) -> Reply:
        answer = recorder(request)  # type: ignore[arg-type]
        if len(recorder.seen) == 1:
            stalled.set()
            return Reply(delay_s=30)
        return answer

    burst = [grouped(at=at(i)) for i in range(3)]
    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/h", timeout="60s")
        try:
            async with backend.new_store() as crashed:
                await arrive(crashed, burst)
                clock.set(at(WAIT_S))
                step = asyncio.create_task(worker_on(sink, crashed, clock).step())
                await asyncio.wait_for(stalled.wait(), timeout=10)
                step.cancel()  # the kill: nothing is settled
                await asyncio.gather(step, return_exceptions=True)
            async with backend.new_store() as restarted:
                clock.advance(seconds=1)
                newcomer = grouped(at=clock())
                await arrive(restarted, [newcomer])
                await restarted.release_own_leases(now=clock())  # what the daemon does
                await run_until_idle(worker_on(sink, restarted, clock), clock, until=at(300))
                assert "hook" not in await restarted.outbox_counts()  # nothing left
        finally:
            await sink.aclose()
    # On PostgreSQL the crashed lease runs out after the newcomer's message is due.
    crashed_try, *after = recorder.seen
    assert crashed_try.ids == tuple(n.id for n in burst)
    assert len(after) == 2
    assert {s.webhook_id: s.ids for s in after}[crashed_try.webhook_id] == crashed_try.ids
    assert [s.ids for s in after if s.webhook_id != crashed_try.webhook_id] == [(newcomer.id,)]
