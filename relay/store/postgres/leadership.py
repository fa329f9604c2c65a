"""Which replica polls which source: leases in the `source_leases` table, shared out.

Each store is a replica with an id of its own. A round (every `renew_every_s`, in a
task of its own, and at once when a source is first asked about) does, in SQL on the
database's clock (`clock_timestamp()`, so replica clocks do not matter):
1. heartbeat: `replicas.seen_at` of this replica;
2. register the sources this replica polls (a row each, held by no one, if missing);
3. renew the leases it still holds (`expires_at` pushed `ttl_s` ahead);
4. share out: with `live` replicas seen within `ttl_s` and `total` sources, the share is
   ceil(total / live); holding more, it releases the extra at once (another replica
   takes them at its next round); holding fewer, it takes free or expired sources; and
   a source it polls that no one took for a whole `ttl_s` it takes whatever its share
   (replicas with different sources, in a rolling deploy, would leave it unpolled).
A take is one `UPDATE ... WHERE holder IS NULL OR expires_at <= clock_timestamp()` over
rows locked `FOR UPDATE SKIP LOCKED`, so a source never goes to two replicas.

A replica that dies, or is cut off without a FIN, stops renewing: its leases expire
within `ttl_s` and the others take them at their next round. A replica believes it leads
only until `ttl_s` after the start of its last successful round (less than what the
server gave it), and a cycle's commit is fenced (`fence`): it locks the lease row and
commits only while this replica holds it unexpired, so a stale leader cannot commit
after another took over.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import structlog

from relay.errors import StoreError
from relay.store.backend import Session
from relay.store.postgres.errors import described

log = structlog.get_logger("relay.store.postgres")

LEASE_TTL_S = 10.0
RENEW_EVERY_S = 2.0

_HEARTBEAT = (
    "INSERT INTO replicas (id, seen_at) VALUES (:me, clock_timestamp()) "
    "ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at"
)
_REGISTER = (
    "INSERT INTO source_leases (source, holder, expires_at) "
    "SELECT s, NULL, clock_timestamp() FROM unnest(:sources::text[]) AS s ORDER BY s "
    "ON CONFLICT (source) DO NOTHING"
)
_RENEW = (
    "UPDATE source_leases SET expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    "WHERE holder = :me AND expires_at > clock_timestamp() AND source = ANY(:sources::text[]) "
    "RETURNING source"
)
_SHARE = (
    "SELECT (SELECT count(*) FROM source_leases) AS total, (SELECT count(*) FROM replicas "
    "WHERE seen_at > clock_timestamp() - make_interval(secs => :ttl)) AS live"
)
_RELEASE = (
    "UPDATE source_leases SET holder = NULL, expires_at = clock_timestamp() "
    "WHERE holder = :me AND source = ANY(:sources::text[])"
)
_FREE = "(holder IS NULL OR expires_at <= clock_timestamp())"
_TAKE = (
    "UPDATE source_leases SET holder = :me, "
    "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    f"WHERE {_FREE} AND source IN (SELECT source FROM source_leases "
    f"WHERE source = ANY(:sources::text[]) AND {_FREE} ORDER BY source "
    "LIMIT :wanted FOR UPDATE SKIP LOCKED) RETURNING source"
)
# A source nobody took for a whole TTL: the replicas under their share do not poll it
# (replicas with different sources, as in a rolling deploy), so one that does takes it,
# beyond its share.
_TAKE_ORPHANS = (
    "UPDATE source_leases SET holder = :me, "
    "expires_at = clock_timestamp() + make_interval(secs => :ttl) "
    f"WHERE {_FREE} AND source IN (SELECT source FROM source_leases "
    f"WHERE source = ANY(:sources::text[]) AND {_FREE} "
    "AND expires_at <= clock_timestamp() - make_interval(secs => :ttl) "
    "FOR UPDATE SKIP LOCKED) RETURNING source"
)
# Rows no replica has touched for an hour: sources no longer configured, replicas gone.
# Rows another round has locked are skipped, so forgetting never waits on one.
_FORGET = (
    "DELETE FROM source_leases WHERE source IN (SELECT source FROM source_leases "
    "WHERE expires_at < clock_timestamp() - interval '1 hour' FOR UPDATE SKIP LOCKED)",
    "DELETE FROM replicas WHERE id IN (SELECT id FROM replicas "
    "WHERE seen_at < clock_timestamp() - interval '1 hour' FOR UPDATE SKIP LOCKED)",
)
_FENCE = (
    "SELECT 1 FROM source_leases WHERE source = :source AND holder = :me "
    "AND expires_at > clock_timestamp() FOR SHARE"
)
_LEAVE = (
    "UPDATE source_leases SET holder = NULL, expires_at = clock_timestamp() WHERE holder = :me",
    "DELETE FROM replicas WHERE id = :me",
)

Transaction = Callable[[str], AbstractAsyncContextManager[Session]]


def fair_share(total: int, live: int) -> int:
    """The most sources one of `live` replicas leads, so that all `total` are led."""
    return math.ceil(total / max(live, 1))


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leadership:
    """The sources one store leads (see the module docstring)."""

    def __init__(
        self,
        transaction: Transaction,
        *,
        ttl_s: float = LEASE_TTL_S,
        renew_every_s: float = RENEW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replica_id = new_replica_id()
        self._transaction = transaction
        self._ttl_s = ttl_s
        self._renew_every_s = renew_every_s
        self._clock = clock
        self._wanted: set[str] = set()
        # Never cleared, unlike `_wanted`: a cycle still committing after `release()` is
        # fenced, and refused.
        self._asked: set[str] = set()
        self._orphans: set[str] = set()  # led beyond the share: no one else would
        self._leading: frozenset[str] = frozenset()
        self._valid_until = 0.0
        self._failure: StoreError | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> frozenset[str]:
        return self._leading if self._clock() < self._valid_until else frozenset()

    async def try_lead(self, source: str) -> bool:
        """Whether this replica leads `source` now. Raises the `StoreError` of the last
        round when it failed and nothing is led."""
        if source not in self._wanted:
            self._wanted.add(source)
            self._asked.add(source)
            try:
                await self.round()
            finally:
                self._start()  # a failed first round is retried in the background
        self._start()  # (again, should the rounds have stopped)
        if source in self.leading:
            return True
        if self._failure is not None:
            raise self._failure
        return False

    def wants(self, source: str) -> bool:
        """Whether this replica ever asked to lead `source` (its commits are fenced)."""
        return source in self._asked

    async def round(self) -> frozenset[str]:
        """One heartbeat, renewal and share-out; returns the sources led."""
        async with self._lock:
            began = self._clock()
            try:
                # Bounded: a connection cut without a FIN would hold the lock, and every
                # poller asking, for as long as TCP takes to notice.
                async with asyncio.timeout(self._ttl_s):
                    leading = await self._share_out()
            except TimeoutError:
                self._failure = StoreError(
                    f"sharing out the sources took over {self._ttl_s:g}s; the database may "
                    "be unreachable (the relay tries again)"
                )
                raise self._failure from None
            except StoreError as exc:
                self._failure = exc
                raise
            self._failure = None
            gained, lost = leading - self._leading, self._leading - leading
            self._leading, self._valid_until = leading, began + self._ttl_s
        for source in sorted(gained):
            log.info("store.leading", replica=self.replica_id, source=source)
        for source in sorted(lost):
            log.info("store.not_leading", replica=self.replica_id, source=source)
        return leading

    async def _share_out(self) -> frozenset[str]:
        me, ttl, sources = self.replica_id, self._ttl_s, sorted(self._wanted)
        async with self._transaction("share out the sources") as session:
            await session.execute(_HEARTBEAT, me=me)
            await session.execute(_REGISTER, sources=sources)
            held = {
                row["source"]
                for row in await session.fetch(_RENEW, me=me, ttl=ttl, sources=sources)
            }
            counts = await session.fetch_one(_SHARE, ttl=ttl)
            assert counts is not None
            share = fair_share(int(counts["total"]), int(counts["live"]))
            # Orphans taken beyond the share are kept: released, they would be orphans
            # again.
            shared = sorted(held - self._orphans)
            if len(shared) > share:
                extra = shared[share:]
                await session.execute(_RELEASE, me=me, sources=extra)
                held -= set(extra)
            elif len(held) < share:
                taken = await session.fetch(
                    _TAKE, me=me, ttl=ttl, sources=sources, wanted=share - len(held)
                )
                held |= {row["source"] for row in taken}
            orphans = {
                row["source"]
                for row in await session.fetch(_TAKE_ORPHANS, me=me, ttl=ttl, sources=sources)
            }
            held |= orphans
            self._orphans = (self._orphans | orphans) & held
            for statement in _FORGET:
                await session.execute(statement)
        return frozenset(held)

    async def fence(self, session: Session, source: str) -> None:
        """Inside a cycle's commit: lock the lease of `source`, and refuse the commit
        unless this replica holds it unexpired."""
        if await session.fetch_one(_FENCE, source=source, me=self.replica_id) is None:
            raise StoreError(
                f"source {source!r} is no longer led by this replica (its lease expired or "
                "another replica took it over); the cycle was not committed"
            )

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep(), name="relay-leadership")

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every_s)
            try:
                await self.round()
            except Exception as exc:  # the rounds must go on: they keep the leases
                log.warning("store.leadership_round_failed", error=described(exc))

    async def release(self) -> None:
        """Stop leading every source and leave: the others take them at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        asked, self._leading = bool(self._wanted), frozenset()
        self._wanted.clear()
        self._orphans.clear()
        if not asked:
            return
        try:
            async with self._transaction("give up the lead of its sources") as session:
                for statement in _LEAVE:
                    await session.execute(statement, me=self.replica_id)
        except StoreError as exc:
            # Its leases expire on their own within the TTL.
            log.warning("store.leadership_release_failed", error=str(exc))
