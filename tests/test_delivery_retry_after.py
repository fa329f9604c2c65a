"""Issue 13: no answer of a receiver stops a delivery worker, a receiver's `Retry-After`
is bounded by `max_retry_after`, and `max_age` wins over any pause. Real webhook sinks
against the recording loopback `Receiver`, a real SQLite outbox, and (for "the worker
never stops") the real `run()` loop on the real clock."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from relay.delivery.worker import DeliveryResult, DeliveryWorker
from relay.domain.delivery import RetryAfter, bounded_retry_after
from relay.domain.silences import Silence
from relay.errors import SinkError
from relay.settings import WebhookSinkSettings
from relay.settings.loader import parse_settings
from relay.sim import ManualClock
from relay.sinks.webhook import WebhookSink
from relay.source import ClientConfig
from relay.store import OutboxCounts, SqliteStore
from relay.telemetry.metrics import RelayMetrics
from tests.delivery_kit import T0, Received, Receiver, Reply, enqueue, make_notification

# The answers that once crashed the worker or paused a sink for ever: too long for a
# date, infinite as a float, negative, and a date at the end of the calendar.
NASTY = ["999999999999", "9" * 400, "-5", "Fri, 31 Dec 9999 23:59:59 GMT"]
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "relay.db") as opened:
        yield opened


def webhook(url: str, **extra: Any) -> WebhookSink:
    settings = WebhookSinkSettings.model_validate({"type": "webhook", "url": url, **extra})
    return WebhookSink("hook", settings)


async def counts(store: SqliteStore) -> OutboxCounts:
    return (await store.outbox_counts()).get("hook", OutboxCounts(0, 0))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", RetryAfter(120.0, capped=False)),
        ("Mon, 02 Mar 2026 09:01:00 GMT", RetryAfter(60.0, capped=False)),
        ("901", RetryAfter(900.0, capped=True)),
        ("soon", RetryAfter(900.0, capped=True)),
        *[(value, RetryAfter(900.0, capped=True)) for value in NASTY],
    ],
)
def test_a_retry_after_counts_as_the_cap_past_it_or_unreadable(
    header: str | None, expected: RetryAfter | None
) -> None:
    assert bounded_retry_after(header, now=NOW, max_s=900.0) == expected


@pytest.mark.parametrize("value", NASTY)
async def test_a_sink_takes_a_nasty_retry_after_as_its_max_retry_after(value: str) -> None:
    async with Receiver(lambda _: Reply(429, "slow down", {"Retry-After": value})) as receiver:
        sink = webhook(f"{receiver.url}/hook", max_retry_after="10m")
        try:
            with capture_logs() as logs, pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert caught.value.retryable
    assert caught.value.retry_after_s == 600.0
    [warning] = [e for e in logs if e["event"] == "delivery.retry_after_capped"]
    assert warning["used_s"] == 600.0
    assert "sinks.hook.max_retry_after" in warning["hint"]


class Deliveries:
    """An `on_result` hook: an event set once `expected` notifications were delivered."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.delivered = 0
        self.done = asyncio.Event()

    def __call__(self, result: DeliveryResult) -> None:
        if result.outcome == "delivered":
            self.delivered += result.count
            if self.delivered >= self.expected:
                self.done.set()

    async def wait(self, task: asyncio.Task[None], *, timeout_s: float = 5.0) -> None:
        """Until all are delivered; fails at once if the worker loop ended."""
        waiting = asyncio.ensure_future(self.done.wait())
        await asyncio.wait({waiting, task}, timeout=timeout_s, return_when="FIRST_COMPLETED")
        waiting.cancel()
        assert not task.done(), "the worker loop ended"
        assert self.done.is_set(), f"{self.delivered} of {self.expected} delivered"


@asynccontextmanager
async def running(worker: DeliveryWorker, sink: WebhookSink) -> AsyncIterator[asyncio.Task[None]]:
    """The worker's real loop, running until the block ends (then drained, and stopped)."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
        await worker.drain(1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sink.aclose()


async def test_the_worker_loop_survives_nasty_retry_afters_and_delivers_the_rest(
    store: SqliteStore,
) -> None:
    """The real `run()` loop: each notification is first answered 429 with one of the
    values that once killed the process; every one is delivered in the end."""
    answered: dict[str, int] = {}

    def reply(request: Received) -> Reply:
        webhook_id = request.headers["webhook-id"]
        answered[webhook_id] = answered.get(webhook_id, 0) + 1
        if answered[webhook_id] == 1:
            value = NASTY[(len(answered) - 1) % len(NASTY)]
            return Reply(429, "slow down", {"Retry-After": value})
        return Reply(204, "")

    async with Receiver(reply) as receiver:
        sink = webhook(
            f"{receiver.url}/hook",
            retry_initial="50ms",
            retry_max="100ms",
            max_retry_after="100ms",
        )
        deliveries = Deliveries(len(NASTY))
        worker = DeliveryWorker(sink, outbox=store, rng=random.Random(3), on_result=deliveries)
        async with running(worker, sink) as task:
            now = datetime.now(UTC)
            await enqueue(store, [make_notification(created_at=now) for _ in NASTY], at=now)
            worker.wake()
            await deliveries.wait(task)
    assert sorted(answered.values()) == [2] * len(NASTY), "one 429 each, then delivered"
    assert await counts(store) == OutboxCounts(0, 0)


async def test_an_error_of_the_relay_is_contained_counted_and_the_rest_delivered(
    store: SqliteStore,
) -> None:
    """A hook that raises (once while settling a retry, once at the start of a step)
    stands for any bug: the loop goes on, the errors are counted, all is delivered."""
    metrics = RelayMetrics(CollectorRegistry(), sinks=["hook"])
    failures = {"retry": 1, "silences": 1}
    deliveries = Deliveries(2)

    def on_result(result: DeliveryResult) -> None:
        deliveries(result)
        if result.outcome == "retry" and failures["retry"]:
            failures["retry"] -= 1
            raise RuntimeError("posting to https://hooks.example/T0/s3cret failed")

    async def silences(_: datetime) -> list[Silence]:
        if failures["silences"]:
            failures["silences"] -= 1
            raise RuntimeError("https://hooks.example/T0/s3cret")
        return []

    attempts: list[str] = []

    def reply(request: Received) -> Reply:
        attempts.append(request.headers["webhook-id"])
        return Reply(503, "busy") if len(attempts) == 1 else Reply(204, "")

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/hook", retry_initial="50ms", retry_max="100ms")
        worker = DeliveryWorker(
            sink,
            outbox=store,
            on_result=on_result,
            silences=silences,
            on_error=metrics.on_delivery_error,
            idle_poll_s=0.05,
        )
        now = datetime.now(UTC)
        await enqueue(store, [make_notification(created_at=now) for _ in range(2)], at=now)
        async with running(worker, sink) as task:
            with capture_logs() as logs:
                await deliveries.wait(task)

    def errors(stage: str) -> float | None:
        labels = {"sink": "hook", "stage": stage}
        return metrics.registry.get_sample_value("zaia_relay_delivery_errors_total", labels)

    assert (errors("step"), errors("settle")) == (1.0, 1.0)
    events = {e["event"]: e for e in logs}
    assert events["delivery.step_failed"]["error_type"] == "RuntimeError"
    assert "bug in zaia-relay" in events["delivery.settle_failed"]["hint"]
    assert "s3cret" not in str(logs), "an unexpected error is logged by type, not by text"
    assert len(set(attempts)) == 2
    assert await counts(store) == OutboxCounts(0, 0)


async def test_max_age_wins_over_a_pause_longer_than_it(store: SqliteStore) -> None:
    """`Retry-After: 86400` and `max_age: 30s`: what waits behind the paused sink becomes
    a dead letter at 30 s, not when the pause ends."""
    clock = ManualClock(T0)
    requests: list[Received] = []

    def reply(request: Received) -> Reply:
        requests.append(request)
        return Reply(429, "slow down", {"Retry-After": "86400"})

    async with Receiver(reply) as receiver:
        sink = webhook(f"{receiver.url}/hook", max_age="30s", retry_max="10s")
        worker = DeliveryWorker(sink, outbox=store, now=clock, concurrency=1)
        try:
            await enqueue(store, [make_notification(created_at=T0) for _ in range(3)], at=T0)
            await worker.step()  # the first is refused; the others were not tried
            assert worker.health.paused_until == T0 + timedelta(minutes=15), "capped"
            clock.advance(seconds=5)
            late = make_notification(created_at=clock())
            await enqueue(store, [late], at=clock())
            wakes = [(await worker.step()).next_wake_at for _ in range(3)]
            assert (
                T0 + timedelta(seconds=30) < min(w for w in wakes if w) < T0 + timedelta(seconds=31)
            )
            clock.advance(seconds=26)  # T0 + 31 s
            for _ in range(3):
                await worker.step()
            assert await counts(store) == OutboxCounts(1, 3), "the late one has 4 s to go"
            clock.advance(seconds=5)
            for _ in range(3):
                await worker.step()
        finally:
            await sink.aclose()
    assert await counts(store) == OutboxCounts(0, 4)
    assert len(requests) == 1, "a paused sink is not sent to"
    dead = await store.dead_letters(sink="hook")
    assert len(dead) == 4
    assert all("max_age" in (d.reason) for d in dead)


@hyp_settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.from_regex(r"-?\d{1,500}(\.\d{0,5})?", fullmatch=True))
def test_no_retry_after_header_escapes_the_cap_or_raises(header: str) -> None:
    """Whatever a server sends: a wait within [0, cap] that a date can add, or None."""
    wait = bounded_retry_after(header, now=NOW, max_s=900.0)
    if wait is not None:
        assert 0.0 <= wait.seconds <= 900.0
        assert NOW + timedelta(seconds=wait.seconds) >= NOW


def test_the_caps_default_to_15m_for_sinks_and_5m_for_sources() -> None:
    settings = parse_settings(
        """
sources: [{name: prod, api_key: k}]
rules: [{name: r, when: {status: [failed]}, severity: critical, sinks: [hook]}]
sinks: {hook: {type: webhook, url: "http://127.0.0.1:9/h"}}
""",
        environ={},
    )
    assert webhook("http://127.0.0.1:9/h").policy.max_retry_after_s == 900.0
    assert ClientConfig.from_settings(settings.sources[0]).max_retry_after_s == 300.0
