"""Delivery: the workers that take notifications from the outbox to their sinks.

    DeliveryPool(sinks, outbox=store)  # one DeliveryWorker a sink: run(), wake(), drain()

A worker claims due notifications, sends them (batches, rate limits, digests), and
records the outcome: delivered, retried later with backoff, or dead-lettered.
"""

from relay.delivery.pool import DeliveryPool
from relay.delivery.types import DeliveryResult, OnResult, Outbox, StepResult
from relay.delivery.worker import DeliveryWorker

__all__ = [
    "DeliveryPool",
    "DeliveryResult",
    "DeliveryWorker",
    "OnResult",
    "Outbox",
    "StepResult",
]
