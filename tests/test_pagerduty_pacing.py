"""PagerDuty route-group messages (one event per alert, up to 100 a message): the
whole send is bounded by the sink's timeout, which is what the worker's lease covers,
and `rate_limit` paces events, not messages. Real HTTP on loopback (the Events API v2
fake and a slow receiver), real SQLite, an injected clock and sleep."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from relay.errors import SinkError
from relay.settings import PagerDutySinkSettings
from relay.sim import ManualClock
from relay.sinks.pagerduty import PagerDutySink
from relay.store import SqliteStore
from tests.delivery_kit import T0, Received, Receiver, Reply, enqueue
from tests.grouping_kit import WAIT_S, grouped, worker_on
from tests.vendor_kit import ROUTING_KEY, FakePagerDuty

DUE = T0 + timedelta(seconds=WAIT_S)


def pd_settings(api_url: str, **extra: Any) -> PagerDutySinkSettings:
    return PagerDutySinkSettings.model_validate(
        {"type": "pagerduty", "routing_key": ROUTING_KEY, "api_url": api_url, **extra}
    )


class Slow:
    """202 after `delay_s`; `delay_s = 0` makes it quick."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, _: Received) -> Reply:
        return Reply(status=202, body='{"status": "success"}', delay_s=self.delay_s)


async def test_a_group_message_ends_within_its_lease_and_the_retry_goes_on(
    tmp_path: Path,
) -> None:
    slow = Slow(0.3)
    async with SqliteStore(tmp_path / "s.db") as store, Receiver(slow) as pd:
        sink = PagerDutySink("pd", pd_settings(pd.url + "/v2/enqueue", timeout="1s"))
        try:
            burst = [grouped(sink="pd") for _ in range(20)]
            await enqueue(store, burst, at=T0)
            clock = ManualClock(T0)
            worker = worker_on(sink, store, clock)
            await worker.step()
            clock.set(DUE)
            started = time.monotonic()
            result = await worker.step()
            took_s = time.monotonic() - started
            # 20 events at 0.3 s would take 6 s; the lease is sized for one timeout.
            assert took_s < worker.lease_s(1)
            assert result.outcomes == {"retry": 20}
            sent_first = len(pd.requests)
            assert 1 <= sent_first < 20

            slow.delay_s = 0.0
            clock.advance(timedelta(minutes=1))
            assert (await worker.step()).outcomes == {"delivered": 20}
            keys = [json.loads(r.body)["dedup_key"] for r in pd.requests]
            assert len(set(keys)) == 20
            # Only the event in flight when time ran out (received, never acknowledged)
            # goes twice, and PagerDuty folds it by its dedup_key.
            assert len(keys) <= 21, "the retry skipped the events PagerDuty took"
        finally:
            await sink.aclose()


async def test_a_send_that_outlasts_the_timeout_says_how_far_it_got() -> None:
    async with Receiver(Slow(0.4)) as pd:
        sink = PagerDutySink("pd", pd_settings(pd.url + "/v2/enqueue", timeout="1s"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([grouped(sink="pd") for _ in range(5)])
        finally:
            await sink.aclose()
    assert caught.value.retryable
    assert "sent 2 of 5 events within the 1s timeout" in str(caught.value)


async def test_rate_limit_paces_events_not_messages(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=seconds)

    async with SqliteStore(tmp_path / "s.db") as store, FakePagerDuty() as pd:
        settings = pd_settings(pd.api_url, rate_limit="2/s")
        sink = PagerDutySink("pd", settings, now=clock, sleep=sleep)
        try:
            burst = [grouped(sink="pd") for _ in range(10)]
            await enqueue(store, burst, at=T0)
            worker = worker_on(sink, store, clock)
            await worker.step()
            clock.set(DUE)
            started = clock()
            assert (await worker.step()).outcomes == {"delivered": 10}
        finally:
            await sink.aclose()
    assert len(pd.events) == 10
    # A burst of 3 (the bucket's capacity), then one event every 0.5 s.
    assert len(waits) == 7
    assert all(abs(w - 0.5) < 1e-6 for w in waits), waits
    assert clock() - started == timedelta(seconds=3.5)


async def test_without_a_rate_limit_nothing_waits(tmp_path: Path) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with SqliteStore(tmp_path / "s.db") as store, FakePagerDuty() as pd:
        clock = ManualClock(T0)
        sink = PagerDutySink("pd", pd_settings(pd.api_url), now=clock, sleep=sleep)
        try:
            await enqueue(store, [grouped(sink="pd") for _ in range(10)], at=T0)
            worker = worker_on(sink, store, clock)
            await worker.step()
            clock.set(DUE)
            assert (await worker.step()).outcomes == {"delivered": 10}
        finally:
            await sink.aclose()
    assert waits == []
    assert len(pd.events) == 10
