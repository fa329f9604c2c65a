"""The delivery worker over a real SQLite outbox (tmp_path) and real HTTP receivers on
loopback. Timing logic runs on a manual clock, one `step()` at a time: no sleeps."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from relay.delivery.pool import DeliveryPool
from relay.delivery.worker import DeliveryResult, DeliveryWorker, StepResult
from relay.domain.alerts import Notification
from relay.settings import SlackSinkSettings, WebhookSinkSettings
from relay.sim import ManualClock
from relay.sim.clock import utcnow
from relay.sinks.slack import SlackSink
from relay.sinks.webhook import WebhookSink
from relay.store import OutboxCounts, SqliteStore
from tests.delivery_kit import T0, Received, Receiver, Reply, enqueue, make_alert, make_notification


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "relay.db") as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def webhook(url: str, **extra: Any) -> WebhookSink:
    settings = WebhookSinkSettings.model_validate({"type": "webhook", "url": url, **extra})
    return WebhookSink("hook", settings)


def worker_for(
    sink: Any, store: SqliteStore, clock: ManualClock, **extra: Any
) -> tuple[DeliveryWorker, list[DeliveryResult]]:
    results: list[DeliveryResult] = []
    worker = DeliveryWorker(
        sink, outbox=store, now=clock, rng=random.Random(1), on_result=results.append, **extra
    )
    return worker, results


def notifications(count: int, *, sink: str = "hook", at: datetime = T0) -> list[Notification]:
    return [make_notification(sink=sink, created_at=at) for _ in range(count)]


async def counts(store: SqliteStore, sink: str = "hook") -> OutboxCounts:
    return (await store.outbox_counts()).get(sink, OutboxCounts(0, 0))


def ids_of(requests: list[Received]) -> list[str]:
    return [r.headers["webhook-id"] for r in requests]


async def step_until_idle(
    worker: DeliveryWorker, clock: ManualClock, *, limit: int = 500
) -> list[tuple[bool, StepResult]]:
    """Step, jumping the clock to each wanted wake-up, until nothing is pending; returns
    (the sink was failing before the step, what the step did) for each step."""
    steps: list[tuple[bool, StepResult]] = []
    while True:
        failing = worker.health.failing
        result = await worker.step()
        steps.append((failing, result))
        assert len(steps) < limit, "the worker did not settle"
        if result.claimed:
            continue
        if result.next_wake_at is None:
            return steps
        clock.set(max(clock(), result.next_wake_at))


async def test_delivers_everything_due_and_marks_it(store: SqliteStore, clock: ManualClock) -> None:
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h", secret="whsec_" + "a" * 40)
        worker, results = worker_for(sink, store, clock)
        try:
            items = notifications(5)
            assert await enqueue(store, items, at=T0) == 5
            result = await worker.step()
            assert result.claimed == 5
            assert result.outcomes == {"delivered": 5}
            assert await worker.step() == StepResult()  # nothing pending: wait for wake()
        finally:
            await sink.aclose()
    assert sorted(ids_of(receiver.requests)) == sorted(n.id for n in items)
    assert await counts(store) == (0, 0)
    assert sum(r.count for r in results if r.outcome == "delivered") == 5
    assert all(r.sink == "hook" and r.duration_s > 0 for r in results)


async def test_500_then_recovery_every_alert_arrives(
    store: SqliteStore, clock: ManualClock
) -> None:
    answers = iter([500, 502, 503, 500])

    def reply(_: Received) -> Reply:
        return Reply(next(answers, 200))

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, results = worker_for(sink, store, clock)
        try:
            items = notifications(30)
            await enqueue(store, items, at=T0)
            steps = await step_until_idle(worker, clock)
        finally:
            await sink.aclose()
    # Every alert arrived; duplicates only ever under the same webhook-id (the body's id).
    received = receiver.requests
    assert all(r.json()["id"] == r.headers["webhook-id"] for r in received)
    assert {r.headers["webhook-id"] for r in received} == {n.id for n in items}
    per_id = Counter(ids_of(received))
    assert sum(per_id.values()) == 30 + 4
    assert len(received) == 34
    assert sum(r.count for r in results if r.outcome == "retry") == 4
    # While failing, the worker probed with one message at a time: never a flood.
    assert all(result.claimed <= 1 for failing, result in steps if failing)
    assert await counts(store) == (0, 0)
    assert not worker.health.failing


async def test_429_retry_after_5_means_no_request_for_5s(
    store: SqliteStore, clock: ManualClock
) -> None:
    seen_at: list[datetime] = []

    def reply(_: Received) -> Reply:
        seen_at.append(clock())
        if len(seen_at) == 1:
            return Reply(429, "slow down", {"Retry-After": "5"})
        return Reply()

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(1), at=T0)
            first = await worker.step()
            assert first.outcomes == {"retry": 1}
            assert worker.health.paused_until == T0 + timedelta(seconds=5)
            await enqueue(store, notifications(3), at=T0)
            for offset_s in (0.0, 1.0, 2.5, 4.999):
                clock.set(T0 + timedelta(seconds=offset_s))
                result = await worker.step()
                # A paused step may look at what came due (for max_age), never send it.
                assert result.messages == 0
                assert await store.next_due_at("hook") == T0 + timedelta(seconds=5)
            assert len(receiver.requests) == 1
            clock.set(T0 + timedelta(seconds=5))
            await step_until_idle(worker, clock)
        finally:
            await sink.aclose()
    assert len(receiver.requests) == 5  # the refused one again, and the three new ones
    assert min(seen_at[1:]) >= T0 + timedelta(seconds=5)


async def test_4xx_is_dead_at_once_without_pausing(store: SqliteStore, clock: ManualClock) -> None:
    async with Receiver(lambda _: Reply(404, "no such hook")) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, results = worker_for(sink, store, clock)
        try:
            items = notifications(4)
            await enqueue(store, items, at=T0)
            result = await worker.step()
        finally:
            await sink.aclose()
    assert result.outcomes == {"dead": 4}
    assert len(receiver.requests) == 4  # each tried once, none retried
    assert not worker.health.failing
    dead = await store.dead_letters(sink="hook")
    assert {d.notification.id for d in dead} == {n.id for n in items}
    assert all("HTTP 404" in d.reason and "deliveries retry" in d.reason for d in dead)
    assert all(d.attempts == 1 for d in dead)
    assert {r.outcome for r in results} == {"dead"}


async def test_redirect_is_dead_not_followed(store: SqliteStore, clock: ManualClock) -> None:
    async with Receiver(lambda _: Reply(302, "", {"Location": "/elsewhere"})) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(1), at=T0)
            assert (await worker.step()).outcomes == {"dead": 1}
        finally:
            await sink.aclose()
    assert [r.path for r in receiver.requests] == ["/h"]
    (dead,) = await store.dead_letters()
    assert "redirects are not followed" in dead.reason


async def test_retries_back_off_then_max_age_makes_it_dead(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with Receiver(lambda _: Reply(503)) as receiver:
        sink = webhook(f"{receiver.url}/h", max_age="10m", retry_initial="1s", retry_max="2m")
        worker, results = worker_for(sink, store, clock)
        try:
            (item,) = notifications(1)
            await enqueue(store, [item], at=T0)
            await step_until_idle(worker, clock)
        finally:
            await sink.aclose()
    (dead,) = await store.dead_letters()
    assert dead.notification.id == item.id
    assert dead.reason.startswith(f"gave up after {dead.attempts} attempt(s)")
    assert "max_age 10m" in dead.reason
    assert dead.dead_at <= T0 + timedelta(minutes=10)
    # Exponential: 1, 2, 4, 8 ... seconds (minus jitter), capped at 2 minutes.
    gaps = [(b.at - a.at) for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert len(receiver.requests) == dead.attempts
    assert 8 <= dead.attempts <= 12
    assert len(gaps) == dead.attempts - 1
    assert [r.outcome for r in results][-1] == "dead"


async def test_older_than_max_age_is_dead_without_a_request(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h", max_age="1h", retry_max="1m")
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(2), at=T0)
            clock.set(T0 + timedelta(hours=2))  # the relay was down for two hours
            assert (await worker.step()).outcomes == {"dead": 2}
        finally:
            await sink.aclose()
    assert receiver.requests == []
    reasons = {d.reason for d in await store.dead_letters()}
    assert reasons == {"not delivered within max_age (1h) after 0 attempt(s); last error: none"}
    # Replayed by an operator: max_age starts over and it goes out.
    assert await store.retry_dead(now=clock()) == 2


async def test_rate_limit_is_a_token_bucket(store: SqliteStore, clock: ManualClock) -> None:
    sent_at: list[float] = []

    def reply(_: Received) -> Reply:
        sent_at.append((clock() - T0).total_seconds())
        return Reply()

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/h", rate_limit="2/s")
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(12), at=T0)
            first = await worker.step()
            assert first.claimed == 3  # the burst
            waiting = await worker.step()
            assert waiting.claimed == 0
            assert waiting.next_wake_at == T0 + timedelta(seconds=0.5)
            await step_until_idle(worker, clock)
        finally:
            await sink.aclose()
    assert len(receiver.requests) == 12
    assert sent_at[:3] == [0.0, 0.0, 0.0]
    # Never more than burst + rate * elapsed.
    for index, at_s in enumerate(sent_at):
        assert index + 1 <= 3 + 2 * at_s + 1e-9
    assert sent_at[-1] == pytest.approx(4.5)


async def test_group_wait_turns_a_burst_into_one_slack_digest(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with Receiver() as receiver:
        settings = SlackSinkSettings.model_validate(
            {"type": "slack", "webhook_url": f"{receiver.url}/services/T/B/X", "group_wait": "10s"}
        )
        sink = SlackSink("oncall", settings)
        worker, results = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(1, sink="oncall"), at=T0)
            result = await worker.step()
            assert result.claimed == 0
            assert result.next_wake_at == T0 + timedelta(seconds=10)
            clock.set(T0 + timedelta(seconds=4))
            await enqueue(store, notifications(3, sink="oncall", at=clock()), at=clock())
            assert (await worker.step()).claimed == 0
            clock.set(T0 + timedelta(seconds=9))
            await enqueue(store, notifications(596, sink="oncall", at=clock()), at=clock())
            clock.set(T0 + timedelta(seconds=10))
            result = await worker.step()
        finally:
            await sink.aclose()
    assert result.claimed == 600
    assert result.messages == 1
    (request,) = receiver.requests
    header = request.json()["attachments"][0]["blocks"][0]["text"]["text"]
    assert header.endswith("600 alerts: 600 critical")
    assert [r.count for r in results] == [600]


async def test_webhook_batches(store: SqliteStore, clock: ManualClock) -> None:
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h", max_alerts_per_request=4)
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(10), at=T0)
            result = await worker.step()
        finally:
            await sink.aclose()
    assert result.messages == 3
    assert sorted(len(r.json()["notifications"]) for r in receiver.requests) == [2, 4, 4]


async def test_notifications_of_one_alert_stay_in_order(
    store: SqliteStore, clock: ManualClock
) -> None:
    alert = make_alert(windowed=True)
    firing = make_notification(alert, created_at=T0)
    resolved = make_notification(alert, kind="resolved", created_at=T0)
    others = notifications(6)

    def reply(request: Received) -> Reply:
        # The firing is slow to answer: a concurrent send would let the resolve overtake it.
        return Reply(delay_s=0.3 if request.headers["webhook-id"] == firing.id else 0.0)

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, [firing, resolved, *others], at=T0)
            # The outbox holds the resolve back until its firing is delivered.
            assert (await worker.step()).outcomes == {"delivered": 7}
            assert (await worker.step()).outcomes == {"delivered": 1}
        finally:
            await sink.aclose()
    order = ids_of(receiver.requests)
    assert order.index(firing.id) < order.index(resolved.id)


async def test_a_failure_defers_messages_not_yet_started(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with Receiver(lambda _: Reply(500)) as receiver:
        sink = webhook(f"{receiver.url}/h", retry_initial="2s")
        worker, _ = worker_for(sink, store, clock, concurrency=1, messages_per_step=2)
        try:
            items = notifications(5)
            await enqueue(store, items, at=T0)
            result = await worker.step()
            assert result.claimed == 2
            assert result.outcomes == {"retry": 1}
        finally:
            await sink.aclose()
    (tried,) = ids_of(receiver.requests)
    deferred = items[1].id
    assert tried == items[0].id
    paused_until = worker.health.paused_until
    assert paused_until is not None
    assert paused_until > T0
    # The deferred one is due when the pause ends, not before; the failed one no sooner.
    just_before = paused_until - timedelta(milliseconds=1)
    early = await store.claim_due("hook", now=just_before, limit=10, lease_s=60)
    assert {i.notification.id for i in early} == {n.id for n in items[2:]}
    on_time = await store.claim_due("hook", now=paused_until, limit=10, lease_s=60)
    assert deferred in {i.notification.id for i in on_time}
    assert {i.last_error for i in on_time if i.notification.id == deferred} == {
        "not attempted: the sink paused after another message failed"
    }


async def test_a_crashed_claim_comes_back_after_its_lease(
    store: SqliteStore, clock: ManualClock
) -> None:
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h", timeout="2s")
        worker, _ = worker_for(sink, store, clock)
        try:
            (item,) = notifications(1)
            await enqueue(store, [item], at=T0)
            # Another worker claimed it and died before marking it.
            await store.claim_due("hook", now=T0, limit=10, lease_s=15)
            waiting = await worker.step()
            assert waiting.claimed == 0
            assert waiting.next_wake_at == T0 + timedelta(seconds=15)
            clock.set(waiting.next_wake_at)
            assert (await worker.step()).outcomes == {"delivered": 1}
        finally:
            await sink.aclose()
    assert ids_of(receiver.requests) == [item.id]
    # A lease outlasts a step whose every round of sends times out (2 s), plus 5 s.
    assert worker.lease_s(64) == 8 * 2 + 5
    assert worker.lease_s(1) == 2 + 5


async def test_run_wakes_on_enqueue_and_drains(store: SqliteStore) -> None:
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h")
        pool = DeliveryPool({"hook": sink}, outbox=store)
        task = asyncio.create_task(pool.workers["hook"].run(), name="worker:hook")
        try:
            await asyncio.sleep(0)
            now = utcnow()
            await enqueue(store, notifications(3, at=now), at=now)
            pool.wake(["hook", "unknown-sink"])
            await receiver.wait_for(3, timeout_s=5)
            await pool.drain(grace_s=2.0)
            assert task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sink.aclose()
    assert await counts(store) == (0, 0)


async def test_drain_cancels_a_step_that_outlives_the_grace(store: SqliteStore) -> None:
    async with Receiver(lambda _: Reply(delay_s=1.5)) as receiver:
        sink = webhook(f"{receiver.url}/h", timeout="10s")
        worker = DeliveryWorker(sink, outbox=store)
        task = asyncio.create_task(worker.run(), name="worker:hook")
        try:
            now = utcnow()
            await enqueue(store, notifications(1, at=now), at=now)
            worker.wake()
            await receiver.wait_for(1, timeout_s=5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await worker.drain(grace_s=0.2)
            assert task.done()
            assert loop.time() - started < 1.0  # the 1.5 s request was not waited for
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sink.aclose()
    # Not marked: it stays pending (leased) and is delivered again after a restart.
    assert (await counts(store)).pending == 1


async def test_run_survives_a_store_outage(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")  # not open yet: every call fails
    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker = DeliveryWorker(sink, outbox=store)
        task = asyncio.create_task(worker.run(), name="worker:hook")
        try:
            await asyncio.sleep(0.1)
            assert not task.done()  # logged and retried, not crashed
            await store.open()
            now = utcnow()
            await enqueue(store, notifications(2, at=now), at=now)
            worker.wake()
            await receiver.wait_for(2, timeout_s=10)
            await worker.drain(grace_s=2.0)
            assert task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sink.aclose()
            await store.close()


async def test_a_retried_batch_keeps_its_webhook_id(store: SqliteStore, clock: ManualClock) -> None:
    answers = iter([Reply(503), Reply(503), Reply(200)])
    async with Receiver(lambda _: next(answers)) as receiver:
        sink = webhook(f"{receiver.url}/h", max_alerts_per_request=10)
        worker, _ = worker_for(sink, store, clock)
        try:
            await enqueue(store, notifications(5), at=T0)
            await step_until_idle(worker, clock)
        finally:
            await sink.aclose()
    ids = ids_of(receiver.requests)
    assert len(ids) == 3
    assert len(set(ids)) == 1, "every attempt at the same batch carries the same webhook-id"


async def test_a_silence_added_while_notifications_wait_keeps_them_quiet(
    store: SqliteStore, clock: ManualClock
) -> None:
    from relay.domain.silences import Silence, new_silence
    from relay.matchers import parse_matcher

    noisy = [make_notification(make_alert(rule="credit-burn")) for _ in range(2)]
    other = make_notification(make_alert(rule="execution-failed"))
    silence = new_silence(
        [parse_matcher('rule="credit-burn"')],
        ends_at=T0 + timedelta(hours=1),
        now=T0 - timedelta(seconds=1),
    )

    async def active(_at: datetime) -> list[Silence]:
        return [silence]

    async with Receiver() as receiver:
        sink = webhook(f"{receiver.url}/h")
        worker, results = worker_for(sink, store, clock, silences=active)
        try:
            await enqueue(store, [*noisy, other], at=T0)
            outcome = await worker.step()
        finally:
            await sink.aclose()
    assert outcome.outcomes == {"silenced": 2, "delivered": 1}
    assert ids_of(receiver.requests) == [other.id]
    assert await counts(store) == OutboxCounts(0, 0), "settled, not pending and not dead"
    assert {r.outcome for r in results} == {"silenced", "delivered"}
