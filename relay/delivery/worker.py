"""Delivery workers: one a sink, moving notifications from the store's outbox to the sink.

Invariants:
- At least once: a notification leaves the outbox only when the sink accepted it
  (`mark_delivered`), was refused for good or aged past `max_age` (`mark_dead`). A
  crash between sending and marking leaves it leased; the lease runs out (on SQLite the
  next daemon hands it back at start) and it is sent again, under the same `webhook-id`.
- `step()` never sleeps: it reads the injected clock, decides with the pure functions of
  `relay.domain.delivery`, and says when it wants to run again. `run()` (in
  `relay.delivery.loop`) is the only place that waits, until then or until `wake()`.
- A sink is never hammered: after a retryable failure the whole sink pauses (for its
  `Retry-After` or its backoff) and, while failing, only one message is tried at a time.
  Messages of the same step not yet started when a failure comes are put back, due
  when the pause ends.
- Notifications about the same alert in one step are sent in order (firing before its
  resolve); different alerts go concurrently, at most `concurrency` at once.
- `group_wait`: nothing is sent before the oldest due ungrouped notification has
  waited `group_wait` (or a route group's message is due: its route's wait is in its
  due time; then only route groups' notifications are claimed, the ungrouped ones
  still wait); then everything due goes together, up to `max_batch` a message.
- A route group's due notifications go as one message, its members fixed before its
  first attempt, retried together under its stamped id (`relay.delivery.plan`): what
  puts a message back (a failure, a deferral, a failed step) gives it one retry time.
- A rate limit is a token bucket: one token a message, and a step claims no more
  notifications than it has tokens to send.
- `max_age` always wins: a retry, a deferral or a sink's pause never holds a
  notification past it; while the sink is paused, what falls due is still looked at,
  and what is older than `max_age` goes to the dead letters on time.
- Nothing a receiver or one notification causes stops the worker: an unexpected error
  while settling a message retries (then ages out) that message alone, and one that
  escapes a step is logged (`delivery.step_failed`), counted (`on_error`) and backed
  off; only cancellation ends `run()`.
- `drain(grace_s)` stops taking work, lets the step in flight finish within the grace,
  then cancels it (what it had leased comes back when the lease runs out).

Cutting a step's notifications into messages is in `relay.delivery.plan`; the sending
itself (lanes by alert, bounded concurrency) is in `relay.delivery.send`;
the protocol and result types are in `relay.delivery.types` and importable from here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from relay.clock import utcnow
from relay.delivery.loop import DEFAULT_IDLE_POLL_S, OnError, WorkerLoop, raised_at
from relay.delivery.outcomes import log_outcome, settle_unwanted
from relay.delivery.plan import ready_at, step_messages
from relay.delivery.send import Sent, send_in_lanes
from relay.delivery.types import ActiveSilences, DeliveryResult, OnResult, Outbox, StepResult
from relay.domain.delivery import Attempted, SinkHealth, TokenBucket, message_after_failure
from relay.durations import format_duration
from relay.errors import SinkError, StoreError
from relay.scrub import SecretScrubber
from relay.sinks.base import Sink
from relay.store.records import OutboxItem
from relay.vocab import NotificationOutcome

log = structlog.get_logger("relay.delivery")

DEFAULT_CONCURRENCY = 8
# Messages one step sends at most: enough that the store's claim and mark (one
# transaction each) are shared by many deliveries.
DEFAULT_MESSAGES_PER_STEP = 64
_LEASE_MARGIN_S = 5.0
# What a failure may leave in the outbox (`last_error`, a dead letter's reason).
STORED_ERROR_CHARS = 600
_DEFERRED = "not attempted: the sink paused after another message failed"


class DeliveryWorker(WorkerLoop):
    def __init__(
        self,
        sink: Sink,
        *,
        outbox: Outbox,
        now: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        on_result: OnResult | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        messages_per_step: int = DEFAULT_MESSAGES_PER_STEP,
        idle_poll_s: float = DEFAULT_IDLE_POLL_S,
        silences: ActiveSilences | None = None,
        scrubber: SecretScrubber | None = None,
        on_error: OnError | None = None,
    ) -> None:
        if concurrency < 1 or messages_per_step < 1:
            raise ValueError("concurrency and messages_per_step must be at least 1")
        super().__init__(sink.name, now=now, idle_poll_s=idle_poll_s, on_error=on_error)
        self.sink = sink
        self.policy = sink.policy
        self._outbox = outbox
        self._rng = rng if rng is not None else random.Random()
        self._on_result = on_result
        self._concurrency = concurrency
        self._max_messages = messages_per_step
        self._silences = silences
        # Every configured secret, not only this sink's: what is stored is shown later.
        # A reload that brings new secrets replaces it (`DeliveryPool.use_scrubber`).
        self.scrubber = scrubber if scrubber is not None else SecretScrubber()
        self.health = SinkHealth()
        self._bucket: TokenBucket | None = None

    def __repr__(self) -> str:
        return f"DeliveryWorker({self.sink.name!r})"

    def lease_s(self, messages: int) -> float:
        """How long claimed rows stay ours: longer than a step sending `messages` can
        last (every round of `concurrency` sends timing out), plus a margin."""
        rounds = math.ceil(messages / self._concurrency)
        return self.policy.timeout_s * rounds + _LEASE_MARGIN_S

    # --- one step -------------------------------------------------------------------

    async def step(self) -> StepResult:
        """Send what is due now, if anything, and say when to look again."""
        now = self._now()
        name = self.sink.name
        if self.health.paused(now):
            return await self._while_paused(now)
        due, grouped_only = await ready_at(
            self._outbox, name, group_wait_s=self.policy.group_wait_s, now=now
        )
        if due is None:
            return StepResult()
        if due > now:
            return StepResult(next_wake_at=due)
        messages = 1 if self.health.failing else self._max_messages
        if self.policy.rate_per_s is not None:
            bucket = self._bucket_at(now)
            available = bucket.available(now)
            if available < 1:
                return StepResult(next_wake_at=bucket.ready_at(now))
            messages = min(messages, available)
        limit = messages * self.policy.max_batch
        lease_s = self.lease_s(messages)
        items = await self._outbox.claim_due(
            name, now=now, limit=limit, lease_s=lease_s, grouped=True if grouped_only else None
        )
        if not items:
            return StepResult(next_wake_at=await self._outbox.next_due_at(name))
        try:
            return await self._deliver(items, now=now, messages=messages)
        except Exception:
            await self._release(items, now=now)
            raise

    async def _deliver(
        self, items: list[OutboxItem], *, now: datetime, messages: int
    ) -> StepResult:
        result = StepResult(claimed=len(items))
        # Settled without sending: what a silence matches or an acknowledgement stops.
        items, unwanted = await settle_unwanted(
            self._outbox, self.sink.name, items, silences=self._silences, now=now
        )
        for dropped, reason in unwanted:
            self._report(result, "silenced", dropped, 0.0, reason)
        fresh = await self._expire(items, now=now, result=result)
        planned = await step_messages(
            self._outbox,
            self.sink.name,
            fresh,
            max_batch=self.policy.max_batch,
            messages=messages,
            now=now,
        )
        if planned and self._bucket is not None:
            self._bucket = self._bucket.take(now, len(planned))
        result.messages = len(planned)
        sent = await send_in_lanes(self.sink, planned, concurrency=self._concurrency)
        await self._settle(sent, result=result)
        return result

    async def _release(self, items: list[OutboxItem], *, now: datetime) -> None:
        """A step failed after claiming `items`: what is still pending is due again
        after its backoff, rather than when the lease runs out; ONE time for all, so a
        message (a stamped group's above all) is claimed and sent whole again."""
        retry_at = self._retry_together(items, now=now)
        for item in items:
            await self._outbox.mark_retry(
                self.sink.name,
                item.notification.id,
                next_attempt_at=min(retry_at, self._expires_at(item)),
                error=item.last_error
                or "not attempted: the step failed (see delivery.step_failed)",
            )

    def _retry_together(self, items: Sequence[OutboxItem], *, now: datetime) -> datetime:
        """One backoff for `items`, from the most attempted of them."""
        failures = max(item.attempts for item in items) + 1
        return now + timedelta(seconds=self.policy.backoff.delay_s(failures, rng=self._rng))

    async def _while_paused(self, now: datetime) -> StepResult:
        """Nothing is sent while the sink is paused, but what falls due still ages:
        dead-letter what passed `max_age`, and hold the rest until the pause ends or
        its own `max_age` does, whichever comes first."""
        name = self.sink.name
        paused_until = self.health.paused_until
        assert paused_until is not None
        due = await self._outbox.next_due_at(name)
        if due is None or due > now:
            return StepResult(next_wake_at=paused_until if due is None else min(due, paused_until))
        limit = self._max_messages * self.policy.max_batch
        items = await self._outbox.claim_due(name, now=now, limit=limit, lease_s=self.lease_s(1))
        result = StepResult(claimed=len(items))
        for item in await self._expire(items, now=now, result=result):
            await self._outbox.mark_retry(
                name,
                item.notification.id,
                next_attempt_at=min(paused_until, self._expires_at(item)),
                error=item.last_error or _DEFERRED,
            )
        return result

    def _expires_at(self, item: OutboxItem) -> datetime:
        """The first moment `item` is older than `max_age`."""
        return item.first_enqueued_at + timedelta(seconds=self.policy.max_age_s, milliseconds=1)

    def _bucket_at(self, now: datetime) -> TokenBucket:
        if self._bucket is None:
            assert self.policy.rate_per_s is not None
            self._bucket = TokenBucket.full(
                rate_per_s=self.policy.rate_per_s, capacity=self.policy.burst, now=now
            )
        return self._bucket

    async def _expire(
        self, items: list[OutboxItem], *, now: datetime, result: StepResult
    ) -> list[OutboxItem]:
        """Dead-letter what is older than `max_age`; the rest is sent."""
        max_age = timedelta(seconds=self.policy.max_age_s)
        fresh: list[OutboxItem] = []
        for item in items:
            if now - item.first_enqueued_at <= max_age:
                fresh.append(item)
                continue
            reason = (
                f"not delivered within max_age ({format_duration(max_age)}) "
                f"after {item.attempts} attempt(s); last error: {item.last_error or 'none'}"
            )
            await self._outbox.mark_dead(
                self.sink.name, item.notification.id, reason=reason, now=now
            )
            self._report(result, "dead", [item], 0.0, reason)
        return fresh

    async def _settle(self, sent: list[Sent], *, result: StepResult) -> None:
        """Mark what happened in the outbox and update the sink's health."""
        name = self.sink.name
        now = self._now()
        delivered = [s for s in sent if s.attempted and s.error is None]
        ids = [item.notification.id for s in delivered for item in s.items]
        if ids:
            await self._outbox.mark_delivered(name, ids, now=now)
        for s in delivered:
            self._report(result, "delivered", s.items, s.duration_s, None)
        failed = [(s, s.error) for s in sent if s.error is not None]
        retryable = [error for _, error in failed if error.retryable]
        if retryable:
            # One failure of the sink per step, however many messages were in flight:
            # the pause grows with consecutive failed steps, not with the concurrency.
            waits = [e.retry_after_s for e in retryable if e.retry_after_s is not None]
            self.health = self.health.after_failure(
                retry_after_s=max(waits) if waits else None,
                now=now,
                backoff=self.policy.backoff,
                rng=self._rng,
                max_retry_after_s=self.policy.max_retry_after_s,
            )
        for s, error in failed:
            try:
                await self._fail(s, error=error, now=now, result=result)
            except StoreError:
                raise
            except Exception as exc:  # contained to this message
                await self._contain(s, exc, now=now)
        if delivered and not retryable:
            self.health = self.health.after_success()
        resume_at = self.health.paused_until or now
        deferred = [item for s in sent if not s.attempted for item in s.items]
        for item in deferred:
            await self._outbox.mark_retry(
                name,
                item.notification.id,
                next_attempt_at=min(resume_at, self._expires_at(item)),
                error=item.last_error or _DEFERRED,
            )

    async def _contain(self, sent: Sent, exc: Exception, *, now: datetime) -> None:
        """Settling `sent` failed on an error of the relay's own: log it (type and place:
        its text may quote a sink's address), count it and try the message again after
        its backoff, `max_age` still ending it: it stops neither the sink nor the process."""
        log.error(
            "delivery.settle_failed",
            sink=self.sink.name,
            error_type=type(exc).__name__,
            at=raised_at(exc),
            ids=[item.notification.id for item in sent.items[:5]],
            hint="a bug in zaia-relay: this message is tried again later and goes to the "
            "dead letters after max_age, the sink delivers the others; please report it",
        )
        self.count_error("settle")
        # One time for the whole message, so its members are claimed together again.
        retry_at = self._retry_together(sent.items, now=now)
        for item in sent.items:
            await self._outbox.mark_retry(
                self.sink.name,
                item.notification.id,
                next_attempt_at=min(retry_at, self._expires_at(item)),
                error=f"internal error while settling the delivery ({type(exc).__name__})",
            )

    async def _fail(
        self, sent: Sent, *, error: SinkError, now: datetime, result: StepResult
    ) -> None:
        name = self.sink.name
        message = self.scrubber.excerpt(str(error), limit=STORED_ERROR_CHARS)
        by_outcome: dict[NotificationOutcome, list[OutboxItem]] = {}
        decisions = message_after_failure(
            message,
            members=[Attempted(i.attempts + 1, i.first_enqueued_at) for i in sent.items],
            retryable=error.retryable,
            retry_after_s=error.retry_after_s,
            now=now,
            policy=self.policy,
            rng=self._rng,
            not_before=self.health.paused_until,  # or they would only be deferred
        )
        for item, decision in zip(sent.items, decisions, strict=True):
            if decision.outcome == "retry" and decision.next_attempt_at is not None:
                await self._outbox.mark_retry(
                    name,
                    item.notification.id,
                    next_attempt_at=decision.next_attempt_at,
                    error=message,
                )
                by_outcome.setdefault("retry", []).append(item)
            else:
                await self._outbox.mark_dead(
                    name, item.notification.id, reason=decision.reason, now=now
                )
                by_outcome.setdefault("dead", []).append(item)
        for outcome, items in by_outcome.items():
            self._report(result, outcome, items, sent.duration_s, message)

    def _report(
        self,
        result: StepResult,
        outcome: NotificationOutcome,
        items: Sequence[OutboxItem],
        duration_s: float,
        error: str | None,
    ) -> None:
        result.outcomes[outcome] = result.outcomes.get(outcome, 0) + len(items)
        notifications = tuple(item.notification for item in items)
        paused_until = self.health.paused_until
        log_outcome(
            self.sink.name,
            outcome,
            items,
            duration_s=duration_s,
            error=error,
            paused_until=paused_until,
        )
        if self._on_result is not None:
            self._on_result(
                DeliveryResult(self.sink.name, outcome, notifications, duration_s, error)
            )


__all__ = [
    "DEFAULT_CONCURRENCY",
    "DeliveryResult",
    "DeliveryWorker",
    "OnResult",
    "Outbox",
    "StepResult",
]
