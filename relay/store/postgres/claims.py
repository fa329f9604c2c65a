"""Short outbox leases on PostgreSQL, renewed while their delivery runs.

A delivery worker asks for a lease as long as its step can last (every round of sends
timing out: 85 s with the defaults). On PostgreSQL another replica could deliver what a
dead one had claimed, so the lease granted is short (`CLAIM_LEASE_S`) and this store
renews it every `RENEW_EVERY_S` while the row is still leased by it, up to the length
asked for. A replica killed mid-step stops renewing: its rows are due again within
`CLAIM_LEASE_S`, and any replica delivers them.

Renewal is compare-and-set on `next_attempt_at`: a row is pushed on only while it is
pending and still ends where this store last put it, so a row marked delivered, dead,
silenced or retried (or claimed by another replica after the lease ran out) is never
touched again. Lease ends stay on the worker's clock: each is `claimed_at + elapsed +
CLAIM_LEASE_S`, the elapsed time measured on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from relay.store.backend import Session, aware_utc
from relay.store.postgres.errors import described
from relay.store.records import OutboxItem

log = structlog.get_logger("relay.store.postgres")

CLAIM_LEASE_S = 20.0
RENEW_EVERY_S = 5.0

_RENEW = (
    "UPDATE outbox SET next_attempt_at = r.new_end FROM unnest(:sink::text[], :id::text[], "
    ":held_end::timestamptz[], :new_end::timestamptz[]) AS r(sink, id, held_end, new_end) "
    "WHERE outbox.sink = r.sink AND outbox.id = r.id AND outbox.status = 'pending' "
    "AND outbox.next_attempt_at = r.held_end RETURNING outbox.sink, outbox.id"
)

Transaction = Callable[[str], AbstractAsyncContextManager[Session]]


@dataclass(frozen=True, slots=True)
class Held:
    """One claimed row: when (worker's clock, monotonic clock), how long it may be kept,
    and where its lease ends now."""

    claimed_at: datetime
    claimed_s: float
    lease_s: float
    ends_at: datetime

    def at_most(self) -> bool:
        return self.ends_at >= self.claimed_at + timedelta(seconds=self.lease_s)

    def renewed_end(self, now_s: float) -> datetime:
        kept_s = min(self.lease_s, now_s - self.claimed_s + CLAIM_LEASE_S)
        return self.claimed_at + timedelta(seconds=kept_s)


class ClaimRenewal:
    """The rows this store leased, and the task that keeps their leases (see above)."""

    def __init__(
        self,
        transaction: Transaction,
        *,
        renew_every_s: float = RENEW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._transaction = transaction
        self._renew_every_s = renew_every_s
        self._clock = clock
        self._held: dict[tuple[str, str], Held] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def granted(lease_s: float) -> float:
        return min(lease_s, CLAIM_LEASE_S)

    def hold(
        self, sink: str, items: Sequence[OutboxItem], *, now: datetime, lease_s: float
    ) -> None:
        """Keep renewing `items`, claimed at `now` for `lease_s` (granted: `granted(lease_s)`)."""
        if lease_s <= CLAIM_LEASE_S or not items:
            return
        at = aware_utc(now)
        ends = at + timedelta(seconds=self.granted(lease_s))
        held = Held(claimed_at=at, claimed_s=self._clock(), lease_s=lease_s, ends_at=ends)
        for item in items:
            self._held[(sink, item.notification.id)] = held
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep(), name="relay-claim-renewal")

    @property
    def held(self) -> int:
        return len(self._held)

    async def renew(self) -> int:
        """Push on every lease still ours; forget the others. Returns how many were renewed."""
        now_s = self._clock()
        for key in [k for k, h in self._held.items() if h.at_most()]:
            del self._held[key]  # kept as long as the worker asked: it runs out now
        due = {k: h for k, h in self._held.items() if h.renewed_end(now_s) > h.ends_at}
        if not due:
            return 0
        new = {k: h.renewed_end(now_s) for k, h in due.items()}
        async with self._transaction("renew notification leases") as session:
            rows = await session.fetch(
                _RENEW,
                sink=[k[0] for k in due],
                id=[k[1] for k in due],
                held_end=[h.ends_at for h in due.values()],
                new_end=list(new.values()),
            )
        renewed = {(row["sink"], row["id"]) for row in rows}
        for key, held in due.items():
            if self._held.get(key) is not held:
                continue  # claimed again meanwhile
            if key in renewed:
                self._held[key] = _moved(held, new[key])
            else:
                del self._held[key]  # settled, retried, or taken by another replica
        return len(renewed)

    async def _keep(self) -> None:
        while self._held:
            await asyncio.sleep(self._renew_every_s)
            try:
                async with asyncio.timeout(CLAIM_LEASE_S):  # a cut connection must not hang it
                    await self.renew()
            except Exception as exc:  # a renewal missed only shortens a lease
                log.warning("store.claim_renewal_failed", error=described(exc))

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._held.clear()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _moved(held: Held, ends_at: datetime) -> Held:
    return Held(held.claimed_at, held.claimed_s, held.lease_s, ends_at)
