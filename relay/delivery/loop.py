"""The loop a delivery worker runs in: steps until drained, and nothing a step raises
ends it.

Invariants:
- `run()` is the only place that waits (real time): until the moment the last step
  asked for, or until `wake()`.
- Only cancellation (and `drain`) ends `run()`: a step that raises is logged, counted
  through `on_error` (stage `step`) and backed off, exponentially while it keeps
  failing, so a receiver answering something the relay never foresaw (or a store
  that is down) costs a pause, never the process.
- Errors the relay did not foresee are logged by type and place only: their text may
  quote a sink's address, which is a credential.
- `drain(grace_s)` stops taking work, lets the step in flight finish within the grace,
  then cancels it (what it had leased comes back when the lease runs out).
"""

from __future__ import annotations

import asyncio
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime

import structlog

from relay.delivery.types import StepResult
from relay.domain.backoff import backoff_ceiling_s
from relay.errors import StoreError
from relay.vocab import DeliveryErrorStage

log = structlog.get_logger("relay.delivery")

# With nothing pending the worker still looks every so often, for rows that another
# process enqueued or replayed (`zaia-relay deliveries retry`) without waking it.
DEFAULT_IDLE_POLL_S = 5.0
_FAILED_STEP_RETRY_S = (0.5, 30.0)
# `on_error(sink, stage)`: `step` (a whole step raised) or `settle` (one message).
OnError = Callable[[str, DeliveryErrorStage], None]


def raised_at(exc: BaseException) -> str:
    """Where `exc` was raised, as `file:line`, for a bug report without its text."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 1)[-1]}:{last.lineno}"


class WorkerLoop(ABC):
    """Runs `step()` until drained; a subclass provides the step."""

    def __init__(
        self,
        name: str,
        *,
        now: Callable[[], datetime],
        idle_poll_s: float = DEFAULT_IDLE_POLL_S,
        on_error: OnError | None = None,
    ) -> None:
        self._loop_name = name
        self._now = now
        self._idle_poll_s = idle_poll_s
        self._on_error = on_error
        self._woken = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def step(self) -> StepResult:
        """Send what is due now, if anything, and say when to look again."""

    def wake(self) -> None:
        """New notifications may be due: look now rather than at the next planned time."""
        self._woken.set()

    async def run(self) -> None:
        """Deliver until `drain()` (or cancellation)."""
        self._task = asyncio.current_task()
        failed_steps = 0
        log.info("delivery.started", sink=self._loop_name)
        while not self._stopping:
            self._woken.clear()  # before reading the store: a wake during the step counts
            try:
                result = await self.step()
            except Exception as exc:  # nothing a receiver or a row causes ends the worker
                failed_steps += 1
                self._step_failed(exc)
                base_s, max_s = _FAILED_STEP_RETRY_S
                await self._wait(backoff_ceiling_s(failed_steps, base_s=base_s, max_s=max_s))
                continue
            failed_steps = 0
            if result.claimed:
                await asyncio.sleep(0)  # let the engine and the HTTP server in between
                continue
            await self._wait(self._seconds_until(result.next_wake_at))
        log.info("delivery.stopped", sink=self._loop_name)

    def _step_failed(self, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            log.error("delivery.store_failed", sink=self._loop_name, error=str(exc))
            return
        log.error(
            "delivery.step_failed",
            sink=self._loop_name,
            error_type=type(exc).__name__,
            at=raised_at(exc),
            hint="a bug in zaia-relay: the worker backs off and goes on, and what the step "
            "had claimed is tried again after its backoff; please report it",
        )
        self.count_error("step")

    def count_error(self, stage: DeliveryErrorStage) -> None:
        if self._on_error is not None:
            self._on_error(self._loop_name, stage)

    async def drain(self, grace_s: float) -> None:
        """Stop taking work; wait up to `grace_s` for the step in flight, then cancel it."""
        self._stopping = True
        self._woken.set()
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=grace_s)
        if not done:
            log.warning("delivery.drain_timeout", sink=self._loop_name, grace_s=grace_s)
            task.cancel()
            await asyncio.wait({task})

    def _seconds_until(self, when: datetime | None) -> float:
        if when is None:
            return self._idle_poll_s
        return min(self._idle_poll_s, max(0.0, (when - self._now()).total_seconds()))

    async def _wait(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(seconds):
                await self._woken.wait()
        except TimeoutError:
            pass
