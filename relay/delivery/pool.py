"""The delivery workers of every sink, as the app runs them.

Invariants:
- One worker a sink, all over the same outbox; a worker only ever claims its own sink's
  rows, so workers never contend for a notification.
- `wake()` names sinks; an unknown name is ignored (a notification for a sink removed
  from the configuration waits in the outbox until it is purged or the sink returns).
- A reload `add()`s a worker for a sink added or changed and `remove()`s the worker of
  one removed or changed (after draining it); the outbox rows stay where they are.
- `drain()` gives every worker the same grace period, concurrently.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial

from relay.clock import utcnow
from relay.delivery.loop import OnError
from relay.delivery.types import ActiveSilences
from relay.delivery.worker import DeliveryWorker, OnResult, Outbox
from relay.scrub import SecretScrubber
from relay.sinks.base import Sink


class DeliveryPool:
    """One worker a sink, for the app: run them, wake them, drain them."""

    def __init__(
        self,
        sinks: Mapping[str, Sink],
        *,
        outbox: Outbox,
        now: Callable[[], datetime] = utcnow,
        on_result: OnResult | None = None,
        silences: ActiveSilences | None = None,
        scrubber: SecretScrubber | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self._worker = partial(
            DeliveryWorker,
            outbox=outbox,
            now=now,
            on_result=on_result,
            silences=silences,
            on_error=on_error,
        )
        self.scrubber = scrubber if scrubber is not None else SecretScrubber()
        self.workers = {
            name: self._worker(sink, scrubber=self.scrubber) for name, sink in sinks.items()
        }

    def add(self, sink: Sink) -> DeliveryWorker:
        """A worker for `sink` (replacing any of the same name, which must be drained)."""
        worker = self._worker(sink, scrubber=self.scrubber)
        self.workers[sink.name] = worker
        return worker

    def use_scrubber(self, scrubber: SecretScrubber) -> None:
        """Scrub with `scrubber` from now on, in every worker: a reload's new secrets
        must not reach a stored error through a sink the reload left running."""
        self.scrubber = scrubber
        for worker in self.workers.values():
            worker.scrubber = scrubber

    def remove(self, name: str) -> DeliveryWorker | None:
        return self.workers.pop(name, None)

    def wake(self, sinks: Iterable[str] | None = None) -> None:
        """Wake the workers of `sinks` (all when None), e.g. after a commit enqueued; an
        unknown name is ignored."""
        for name in self.workers if sinks is None else sinks:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    async def drain(self, grace_s: float) -> None:
        """Drain every worker within one shared grace period."""
        if self.workers:
            await asyncio.gather(*(w.drain(grace_s) for w in self.workers.values()))


__all__ = ["DeliveryPool"]
