"""The PostgreSQL store: one database, any number of replicas. Its pool, lifecycle and
transactions; what it stores and how is the shared `relay.store.sql_store.SqlStore`'s,
in the PostgreSQL dialect (`relay.store.postgres.dialect`).

    store = PostgresStore("postgresql://relay:secret@db:5432/relay", min_size=1, max_size=5)

It keeps the contract of `relay.store.base.Store` exactly as `SqliteStore` does (same
semantics, same return values; the two are tested alike). Where SQLite serialises
writers, PostgreSQL keeps the invariants with constraints and row locks:
- One asyncpg pool per store (`min_size`..`max_size` connections). Every store method
  takes one connection and runs in ONE transaction on it (READ COMMITTED; reads that
  span several statements use a read-only REPEATABLE READ snapshot), so a caller never
  sees half a write and concurrent methods never share a transaction.
- `commit_cycle` is ONE transaction; transitions and outbox rows are deduplicated by
  their unique keys (`ON CONFLICT DO NOTHING`), new alerts named by the server.
- `claim_due` leases with `FOR UPDATE SKIP LOCKED` (see `relay.store.postgres.dialect`).
- `try_lead` elects, per source, the one replica that polls it, with leases in a table
  shared out among the live replicas (see `relay.store.postgres.leadership`); a cycle's
  commit is fenced by its source's lease.
- Outbox leases are short and renewed while their delivery runs
  (`relay.store.postgres.claims`), so a dead replica's claims come back within seconds.
- A connection idle inside a transaction longer than the source lease is closed by the
  server (`idle_in_transaction_session_timeout`): a frozen replica cannot keep row
  locks that others wait on.
- The schema is versioned in `schema_migrations` with PostgreSQL's own numbering (see
  `relay.store.postgres.schema`); `open()` migrates it, replicas starting together
  included.
- Datetimes go in timezone-aware (naive ones are refused) and come out in UTC; every
  backend failure leaves as a `StoreError` without the URL's password
  (`relay.store.postgres.errors`).

Connection settings beyond the URL's (`sslmode`, `connect_timeout`, `search_path`, ...)
go in the URL's query string, as libpq spells them; asyncpg passes unknown parameters
to the server as settings, so `?search_path=relay` selects a schema.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
import structlog

from relay.errors import StoreError
from relay.store.backend import Dialect, Session
from relay.store.postgres.claims import RENEW_EVERY_S as CLAIMS_RENEW_EVERY_S
from relay.store.postgres.claims import ClaimRenewal
from relay.store.postgres.dialect import POSTGRES, PgSession
from relay.store.postgres.errors import PgErrors
from relay.store.postgres.leadership import LEASE_TTL_S, RENEW_EVERY_S, Leadership
from relay.store.postgres.schema import migrate
from relay.store.records import OutboxItem
from relay.store.sql_store import SqlStore

if TYPE_CHECKING:
    from relay.store.base import Store

log = structlog.get_logger("relay.store.postgres")

CONNECT_TIMEOUT_S = 10.0


class PostgresStore(SqlStore):
    """The `Store` on a PostgreSQL database (see the module docstring)."""

    dialect: ClassVar[Dialect] = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 5,
        lease_ttl_s: float = LEASE_TTL_S,
        renew_every_s: float = RENEW_EVERY_S,
        claims_renew_every_s: float = CLAIMS_RENEW_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`lease_ttl_s`, `renew_every_s`: of source leases; `claims_renew_every_s`: of
        outbox leases; `clock`: the monotonic clock leases are timed on (tests drive
        rounds and renewals themselves)."""
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}..{max_size}"
            )
        self._url = url
        self._errors = PgErrors(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._idle_limit_ms = str(round(lease_ttl_s * 1000))
        self.leadership = Leadership(
            self._writing, ttl_s=lease_ttl_s, renew_every_s=renew_every_s, clock=clock
        )
        self.claims = ClaimRenewal(self._writing, renew_every_s=claims_renew_every_s, clock=clock)
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._errors.where!r})"

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            with self._errors.mapped("connect", malformed_url=True):
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=CONNECT_TIMEOUT_S,
                    # A startup parameter, the session's default: it survives the
                    # RESET ALL a connection gets when it goes back to the pool.
                    server_settings={"idle_in_transaction_session_timeout": self._idle_limit_ms},
                )
            try:
                with self._errors.mapped("create or migrate the schema"):
                    async with pool.acquire() as conn:
                        before, after = await migrate(conn, location=self._errors.where)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        if before != after:
            log.info("store.migrated", url=self._errors.where, from_version=before, to=after)

    async def close(self) -> None:
        async with self._lock:
            if self._pool is not None:
                await self.leadership.release()
            await self.claims.stop()
            pool, self._pool = self._pool, None
            if pool is not None:
                with self._errors.mapped("close"):
                    await pool.close()

    async def release_own_leases(self, *, now: datetime) -> int:
        # Another replica may hold them; a dead one's come back within `CLAIM_LEASE_S`.
        del now
        return 0

    async def try_lead(self, source: str) -> bool:
        """Whether this store leads `source` (see `relay.store.postgres.leadership`)."""
        self._require_open()
        return await self.leadership.try_lead(source)

    async def _fence_cycle(self, session: Session, source: str) -> None:
        # A replica that never asked to lead (`zaia-relay once`, tests) is not fenced.
        if self.leadership.wants(source):
            await self.leadership.fence(session, source)

    async def claim_due(
        self,
        sink: str,
        *,
        now: datetime,
        limit: int,
        lease_s: float,
        grouped: bool | None = None,
    ) -> list[OutboxItem]:
        """Claims with a short lease, renewed up to `lease_s` (`relay.store.postgres.claims`)."""
        granted = self.claims.granted(lease_s) if lease_s > 0 else lease_s
        items = await super().claim_due(
            sink, now=now, limit=limit, lease_s=granted, grouped=grouped
        )
        self.claims.hold(sink, items, now=now, lease_s=lease_s)
        return items

    # --- transactions -------------------------------------------------------------

    def _require_open(self) -> Any:
        if self._pool is None:
            raise StoreError(
                f"postgresql store {self._errors.where} is not open; call open() first"
            )
        return self._pool

    def _reading(
        self, action: str, *, snapshot: bool = False
    ) -> AbstractAsyncContextManager[PgSession]:
        return self._transaction(action, snapshot=snapshot)

    def _write_transaction(self, action: str) -> AbstractAsyncContextManager[PgSession]:
        return self._transaction(action, snapshot=False)

    @asynccontextmanager
    async def _transaction(self, action: str, *, snapshot: bool) -> AsyncIterator[PgSession]:
        """A pooled connection inside one transaction, committed when the block ends
        (rolled back when it raises). `snapshot`: a read-only consistent snapshot."""
        pool = self._require_open()
        with self._errors.mapped(action):
            async with pool.acquire() as conn:
                if snapshot:
                    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                else:
                    transaction = conn.transaction()
                async with transaction:
                    yield PgSession(conn)


if TYPE_CHECKING:

    def _conforms(store: PostgresStore) -> Store:
        # mypy checks here that `PostgresStore` keeps the whole `Store` protocol.
        return store
