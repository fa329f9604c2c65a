"""Sending one step's messages to a sink, for `relay.delivery.worker.DeliveryWorker`.

Invariants:
- Messages about the same alert go in order, one after another (a firing before its
  resolve); different alerts go concurrently, at most `concurrency` at once.
- After a retryable failure, messages not yet started are not sent: they come back
  with `attempted=False`, for the worker to put back in the outbox.
- Nothing here touches the outbox or the sink's health; every message comes back as a
  `Sent`, and an unexpected exception from a sink (a bug) becomes a retryable
  `SinkError`, so a fixed release delivers.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from relay.errors import SinkError
from relay.sinks.base import Sink
from relay.store.records import OutboxItem

log = structlog.get_logger("relay.delivery")


@dataclass(slots=True)
class Sent:
    """One message and what became of it (`attempted=False`: it was held back)."""

    items: list[OutboxItem]
    error: SinkError | None = None
    duration_s: float = 0.0
    attempted: bool = True


async def send_in_lanes(
    sink: Sink, planned: list[list[OutboxItem]], *, concurrency: int
) -> list[Sent]:
    """Send each message; messages of one alert in order, others concurrently. After
    a retryable failure, messages not yet started are not sent."""
    lanes: dict[str, list[list[OutboxItem]]] = {}
    for message in planned:
        lanes.setdefault(message[0].notification.alert.id, []).append(message)
    sent: list[Sent] = []
    gate = asyncio.Semaphore(concurrency)
    halted = asyncio.Event()

    async def lane(messages: list[list[OutboxItem]]) -> None:
        for message in messages:
            async with gate:
                if halted.is_set():
                    sent.append(Sent(message, attempted=False))
                    continue
                outcome = await send_one(sink, message)
            sent.append(outcome)
            if outcome.error is not None and outcome.error.retryable:
                halted.set()

    if len(lanes) == 1:
        await lane(next(iter(lanes.values())))
    else:
        async with asyncio.TaskGroup() as group:
            for key, messages in lanes.items():
                group.create_task(lane(messages), name=f"deliver:{sink.name}:{key}")
    return sent


async def send_one(sink: Sink, message: list[OutboxItem]) -> Sent:
    started = time.perf_counter()
    error: SinkError | None = None
    try:
        await sink.send([item.notification for item in message], message_id=message[0].message_id)
    except SinkError as exc:
        error = exc
    except Exception as exc:  # a bug in a sink: retried, so a fixed release delivers
        log.exception("delivery.sink_bug", sink=sink.name)
        error = SinkError(sink.name, f"{type(exc).__name__}: {exc}", retryable=True)
    return Sent(message, error, time.perf_counter() - started)


__all__ = ["Sent", "send_in_lanes", "send_one"]
