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
- `try_lead` elects, per source, the one replica that polls it, with a session-level
  advisory lock (see `relay.store.postgres.leadership`).
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
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
import structlog

from relay.errors import StoreError
from relay.store.backend import Dialect
from relay.store.postgres.dialect import POSTGRES, PgSession
from relay.store.postgres.errors import PgErrors
from relay.store.postgres.leadership import CONNECT_TIMEOUT_S, Leadership
from relay.store.postgres.schema import migrate
from relay.store.sql_store import SqlStore

if TYPE_CHECKING:
    from relay.store.base import Store

log = structlog.get_logger("relay.store.postgres")


class PostgresStore(SqlStore):
    """The `Store` on a PostgreSQL database (see the module docstring)."""

    dialect: ClassVar[Dialect] = POSTGRES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 5) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}..{max_size}"
            )
        self._url = url
        self._errors = PgErrors(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._leadership = Leadership(url, errors=self._errors)
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
            pool, self._pool = self._pool, None
            await self._leadership.release()
            if pool is not None:
                with self._errors.mapped("close"):
                    await pool.close()

    async def try_lead(self, source: str) -> bool:
        """Whether this store leads `source` (see `relay.store.postgres.leadership`)."""
        self._require_open()
        return await self._leadership.try_lead(source)

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
