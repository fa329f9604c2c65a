"""What a delivery worker needs and what it reports: the `Outbox` it reads and marks,
the `DeliveryResult` it hands to `OnResult` callbacks, and the `StepResult` of a step.

Invariants:
- `Outbox` is a protocol over store methods only; `relay.store.Store` satisfies it, and
  tests may pass any fake that does.
- A `DeliveryResult` is immutable and carries one outcome for all its notifications. A
  message is delivered whole, but when it fails its notifications may split between
  retried and dead, so one message can give two results.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from relay.domain.alerts import Notification
from relay.domain.silences import Silence
from relay.store.records import OutboxItem
from relay.vocab import NotificationOutcome


class Outbox(Protocol):
    """The store methods a worker uses (`relay.store.Store` has them all)."""

    async def claim_due(
        self,
        sink: str,
        *,
        now: datetime,
        limit: int,
        lease_s: float,
        grouped: bool | None = None,
    ) -> list[OutboxItem]: ...

    async def stamp_messages(
        self, sink: str, messages: Mapping[str, Collection[str]], *, now: datetime
    ) -> int: ...

    async def mark_delivered(self, sink: str, ids: Collection[str], *, now: datetime) -> int: ...

    async def mark_silenced(
        self, sink: str, ids: Collection[str], *, reason: str, now: datetime
    ) -> int: ...

    async def mark_retry(
        self, sink: str, notification_id: str, *, next_attempt_at: datetime, error: str
    ) -> bool: ...

    async def mark_dead(
        self, sink: str, notification_id: str, *, reason: str, now: datetime
    ) -> bool: ...

    async def next_due_at(self, sink: str, *, grouped: bool | None = None) -> datetime | None: ...

    async def acknowledged_among(self, alert_ids: Collection[str]) -> set[str]: ...


# The silences in force at a time (config ones and stored ones): a notification that
# falls due while one matches is settled without being sent.
ActiveSilences = Callable[[datetime], Awaitable[Sequence[Silence]]]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of some notifications of one message (for metrics and tests)."""

    sink: str
    outcome: NotificationOutcome
    notifications: tuple[Notification, ...]
    duration_s: float
    error: str | None = None

    @property
    def count(self) -> int:
        return len(self.notifications)


OnResult = Callable[[DeliveryResult], None]


@dataclass(slots=True)
class StepResult:
    """One step's work, and when the worker wants to step again (None: when woken)."""

    claimed: int = 0
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    next_wake_at: datetime | None = None


__all__ = ["ActiveSilences", "DeliveryResult", "OnResult", "Outbox", "StepResult"]
