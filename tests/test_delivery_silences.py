"""The delivery worker against silences with Alertmanager matchers and recurring
windows: a notification still waiting in the outbox when a recurring window begins is
settled as silenced, not sent; outside the window it is sent."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from relay.delivery.worker import DeliveryResult, DeliveryWorker
from relay.domain.silences import Silence, config_silences
from relay.settings import SilenceSettings, TimeIntervalSettings, WebhookSinkSettings
from relay.sim import ManualClock
from relay.sinks.webhook import WebhookSink
from relay.store import OutboxCounts, SqliteStore
from tests.delivery_kit import T0, Received, Receiver, Reply, enqueue, make_alert, make_notification

# T0 is Monday 2026-03-02 09:00 UTC, 10:00 in Berlin (CET): the window opens 5 min later.
QUIET = TimeIntervalSettings.model_validate(
    {"name": "quiet", "times": [{"start": "10:05", "end": "11:00"}], "location": "Europe/Berlin"}
)
SILENCES = config_silences(
    [
        SilenceSettings.model_validate(
            {"matchers": ['source=~"stag.*"', 'rule!="credits"'], "time_intervals": ["quiet"]}
        )
    ],
    intervals={"quiet": QUIET.build()},
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore(tmp_path / "relay.db") as opened:
        yield opened


async def in_force(_at: datetime) -> list[Silence]:
    return SILENCES


async def test_a_waiting_notification_is_silenced_when_a_recurring_window_begins(
    store: SqliteStore,
) -> None:
    clock = ManualClock(T0)
    staging = make_notification(make_alert(source="staging"))
    prod = make_notification(make_alert(source="prod"))

    def reply(_: Received) -> Reply:
        # Down until the window has begun: both notifications wait, to be retried.
        return Reply(503) if clock() < T0 + timedelta(minutes=5) else Reply(200)

    results: list[DeliveryResult] = []
    async with Receiver(reply) as receiver:
        sink = WebhookSink("hook", WebhookSinkSettings.model_validate({
            "type": "webhook", "url": f"{receiver.url}/h"
        }))  # fmt: skip
        worker = DeliveryWorker(
            sink,
            outbox=store,
            now=clock,
            rng=random.Random(1),
            on_result=results.append,
            silences=in_force,
        )
        try:
            await enqueue(store, [staging, prod], at=T0)
            first = await worker.step()
            assert first.outcomes == {"retry": 2}, "outside the window nothing is silenced"
            clock.set(T0 + timedelta(minutes=6))
            while (await store.outbox_counts()).get("hook", OutboxCounts(0, 0)).pending:
                step = await worker.step()
                if not step.claimed and step.next_wake_at is not None:
                    clock.set(max(clock(), step.next_wake_at))
        finally:
            await sink.aclose()
    sent = [r.headers["webhook-id"] for r in receiver.requests]
    assert sent[-1] == prod.id
    assert sent.count(staging.id) == 1, "tried once before the window, never again"
    silenced = [r for r in results if r.outcome == "silenced"]
    assert [n.id for r in silenced for n in r.notifications] == [staging.id]
    assert silenced[0].error == f"silenced by {SILENCES[0].id}"
    assert (await store.outbox_counts()).get("hook", OutboxCounts(0, 0)) == OutboxCounts(0, 0)
