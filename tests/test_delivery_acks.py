"""The delivery worker against acknowledgements: a reminder still waiting in the outbox
when its alert is acknowledged is settled as silenced (reason: acknowledged), not sent;
the firing and resolved notifications of the same alert, and reminders of other alerts,
are sent. Both stores."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from relay.delivery.worker import DeliveryResult, DeliveryWorker
from relay.domain.state import SourceCursor
from relay.settings import WebhookSinkSettings
from relay.sim import ManualClock
from relay.sinks.webhook import WebhookSink
from relay.store import CycleResult, OutboxCounts, Store
from tests import store_backends
from tests.delivery_kit import T0, Receiver, make_alert, make_notification

backend, store = store_backends.backend, store_backends.store


async def test_an_acknowledged_alerts_queued_reminder_is_not_sent(
    store: Store, tmp_path: Path
) -> None:
    acked = make_alert(windowed=True, source="prod")
    other = dataclasses.replace(make_alert(windowed=True, source="prod"), id="alert_other")
    resolved = dataclasses.replace(acked, state="resolved", ended_at=T0)
    queued = [
        make_notification(acked, kind="reminder", sequence=1),
        make_notification(resolved, kind="resolved"),
        make_notification(other, kind="reminder", sequence=1),
    ]
    cursor = SourceCursor(source="prod", first_poll_done=True, last_success_at=T0)
    await store.commit_cycle(
        CycleResult(
            "prod",
            states=[],
            transitions=[],
            cursor=cursor,
            alerts=[acked, other],
            notifications=queued,
        )
    )
    assert await store.acknowledge_alert(acked.id, by="alice", at=T0, comment="on it")

    results: list[DeliveryResult] = []
    async with Receiver() as receiver:
        sink = WebhookSink(
            "hook", WebhookSinkSettings.model_validate({"type": "webhook", "url": receiver.url})
        )
        worker = DeliveryWorker(
            sink, outbox=store, now=ManualClock(T0), rng=random.Random(1), on_result=results.append
        )
        try:
            while (await store.outbox_counts()).get("hook", OutboxCounts(0, 0)).pending:
                assert (await worker.step()).claimed
        finally:
            await sink.aclose()
    assert sorted(r.outcome for r in results) == ["delivered", "delivered", "silenced"]
    sent = sorted(r.headers["webhook-id"] for r in receiver.requests)
    assert sent == sorted([queued[1].id, queued[2].id])
    [silenced] = [r for r in results if r.outcome == "silenced"]
    assert [n.id for n in silenced.notifications] == [queued[0].id]
    assert silenced.error == "acknowledged: no more reminders"
    assert (await store.outbox_counts()).get("hook", OutboxCounts(0, 0)).pending == 0
