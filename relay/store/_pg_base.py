"""The connections of the PostgreSQL store: pool, transactions, errors, leadership.

`PostgresStore` is assembled from parts like `SqliteStore` (`_pg_alerts`, `_pg_outbox`,
and `postgres` itself); they all run their statements through `PgBase._tx`.

Invariants:
- One asyncpg pool per store (`min_size`..`max_size` connections). Every store method
  takes one connection and runs in ONE transaction on it (READ COMMITTED; reads that
  span several statements use a read-only REPEATABLE READ snapshot), so a caller never
  sees half a write and concurrent methods never share a transaction.
- Every failure of the backend (server errors, refused or dropped connections,
  timeouts) leaves as a `StoreError` that names the database WITHOUT its password and
  says what to do. Wrong arguments (naive datetimes, one id instead of a collection)
  stay `ValueError` / `TypeError`, raised before any statement runs.
- Datetimes go in timezone-aware (naive ones are refused) and come out in `UTC`.

Leadership (`try_lead`): several replicas share one database, and only one polls a
source at a time. Leading `source` means holding the session-level advisory lock
`pg_try_advisory_lock(hashtext('zaia-relay:' || source))` on a connection of its own,
outside the pool, kept open while the store is. The lock is the server's: it goes away
with the session, so when the leader exits, crashes or loses its connection, the next
`try_lead` of another replica gets it. A dead peer is noticed by the server through TCP
keepalives, which the leader connection asks for every few seconds; a leader that can no
longer reach the server stops leading at its next `try_lead` (the check has a timeout).
Caveats: the lock is per database, not per schema (two deployments sharing a database
under different schemas share the locks of same-named sources), two sources whose names
hash alike share a lock (one replica then leads both), and a pooler in transaction mode
(PgBouncer) between the relay and the server breaks session locks: connect directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import structlog

from relay.errors import StoreError
from relay.store._pg_schema import migrate

log = structlog.get_logger("relay.store.postgres")

_CONNECT_TIMEOUT_S = 10.0
_LEAD_CHECK_TIMEOUT_S = 5.0
# Server-side keepalives of the leader connection: a vanished leader's session (and
# lock) ends within about idle + interval * count seconds.
_LEAD_SETTINGS = {
    "application_name": "zaia-relay leader",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}
_LEAD_KEY = "SELECT pg_try_advisory_lock(hashtext('zaia-relay:' || $1::text))"


def redact_url(url: str) -> str:
    """`url` for messages: scheme, user, host, port and database, never a password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "<unparsable postgresql URL>"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def utc(value: datetime) -> datetime:
    """`value` as a parameter; naive datetimes are refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC only")
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def out(value: datetime) -> datetime:
    """A datetime read back, in `UTC`."""
    return value.astimezone(UTC)


def out_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def row_count(status: str) -> int:
    """Rows a command changed, from its status (`UPDATE 3`, `DELETE 0`, `INSERT 0 2`)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


def clean_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL; a sink's error message might."""
    return text.replace("\x00", "\ufffd")


def id_list(ids: Collection[str], method: str) -> list[str]:
    """`ids` without duplicates, in order."""
    if isinstance(ids, str):
        # A lone id is a Collection[str] too, of its characters: refuse the mistake.
        raise TypeError(f"{method} takes a collection of ids, not one id")
    return list(dict.fromkeys(ids))


class PgBase:
    """Pool, lifecycle, transactions and leadership shared by the parts of the store."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 5) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size and max_size >= 1, got {min_size}..{max_size}"
            )
        self._url = url
        self._where = redact_url(url)
        self._password = urlsplit(url).password if "@" in url else None
        self._min_size = min_size
        self._max_size = max_size
        self._pool: Any = None
        self._lead_conn: Any = None
        self._leading: set[str] = set()
        self._lock = asyncio.Lock()
        self._lead_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            if self._pool is not None:
                return
            with self._mapped("connect", malformed_url=True):
                pool = await asyncpg.create_pool(
                    self._url,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    timeout=_CONNECT_TIMEOUT_S,
                )
            try:
                with self._mapped("create or migrate the schema"):
                    async with pool.acquire() as conn:
                        before, after = await migrate(conn, location=self._where)
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
        if before != after:
            log.info("store.migrated", url=self._where, from_version=before, to=after)

    async def close(self) -> None:
        async with self._lock:
            pool, self._pool = self._pool, None
            async with self._lead_lock:
                await self._drop_lead()
            if pool is not None:
                with self._mapped("close"):
                    await pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        async with self._tx("ping") as conn:
            await conn.fetchval("SELECT count(*) FROM schema_migrations")

    # --- leadership ---------------------------------------------------------------

    async def try_lead(self, source: str) -> bool:
        """Whether this store holds (or just took) the lock of `source`; see the
        module docstring. Raises `StoreError` when the server cannot be reached, after
        giving up whatever it led."""
        self._require_open()
        async with self._lead_lock:
            conn = self._lead_conn
            if conn is not None and not await self._lead_alive(conn):
                log.warning("store.leadership_lost", url=self._where, sources=sorted(self._leading))
                await self._drop_lead()
                conn = None
            if source in self._leading:
                return True
            with self._mapped("take the lead of a source"):
                if conn is None:
                    conn = await asyncpg.connect(
                        self._url, timeout=_CONNECT_TIMEOUT_S, server_settings=_LEAD_SETTINGS
                    )
                    self._lead_conn = conn
                got = bool(await conn.fetchval(_LEAD_KEY, source, timeout=_LEAD_CHECK_TIMEOUT_S))
            if got:
                self._leading.add(source)
                log.info("store.leading", url=self._where, source=source)
            return got

    async def _lead_alive(self, conn: Any) -> bool:
        if conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=_LEAD_CHECK_TIMEOUT_S)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            return False
        return True

    async def _drop_lead(self) -> None:
        conn, self._lead_conn = self._lead_conn, None
        self._leading.clear()
        if conn is not None and not conn.is_closed():
            try:
                # Closing the session releases its advisory locks.
                await asyncio.wait_for(conn.close(), _LEAD_CHECK_TIMEOUT_S)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                conn.terminate()

    # --- plumbing -----------------------------------------------------------------

    def _require_open(self) -> Any:
        if self._pool is None:
            raise StoreError(f"postgresql store {self._where} is not open; call open() first")
        return self._pool

    @asynccontextmanager
    async def _tx(self, action: str, *, snapshot: bool = False) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction, committed when the block ends
        (rolled back when it raises). `snapshot`: a read-only consistent snapshot."""
        pool = self._require_open()
        with self._mapped(action):
            async with pool.acquire() as conn:
                if snapshot:
                    transaction = conn.transaction(isolation="repeatable_read", readonly=True)
                else:
                    transaction = conn.transaction()
                async with transaction:
                    yield conn

    @contextmanager
    def _mapped(self, action: str, *, malformed_url: bool = False) -> Iterator[None]:
        """Backend failures as `StoreError`s; with `malformed_url`, a `ValueError` too
        (asyncpg raises one for a URL it cannot parse, such as a port that is no number)."""
        try:
            yield
        except StoreError:
            raise
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise self._error(action, exc) from exc
        except ValueError as exc:
            if not malformed_url:
                raise
            raise self._error(action, asyncpg.ClientConfigurationError(str(exc))) from exc

    def _error(self, action: str, exc: BaseException) -> StoreError:
        detail = str(exc) or type(exc).__name__
        if self._password:
            detail = detail.replace(self._password, "***")
        state = getattr(exc, "sqlstate", "") or ""
        if isinstance(exc, asyncpg.ClientConfigurationError):
            advice = (
                "store.url is not a valid PostgreSQL URL; write it as "
                "postgresql://user:password@host:5432/database"
            )
        elif isinstance(exc, asyncpg.InvalidPasswordError) or state in ("28P01", "28000"):
            advice = "the server refused the credentials; check the user and password in store.url"
        elif isinstance(exc, asyncpg.InvalidCatalogNameError):
            advice = "the database does not exist; create it, or fix the name in store.url"
        elif state == "42501":
            advice = (
                "the user lacks a privilege; grant it CREATE and USAGE on the schema and "
                "read/write on the relay's tables"
            )
        elif state == "3F000":
            advice = (
                "no schema of the search_path exists; create it, or fix search_path in "
                "store.url (or the user's default)"
            )
        elif state == "53100":
            advice = "the database server's disk is full; free space or lower store.retention"
        elif state == "53300" or isinstance(exc, asyncpg.TooManyConnectionsError):
            advice = (
                "the server has no free connections; raise max_connections or lower the "
                "pool size of the replicas"
            )
        elif state.startswith("23"):
            advice = "a record broke a constraint of the schema; this is a bug, please report it"
        elif state.startswith(("08", "57")) or isinstance(
            exc, OSError | TimeoutError | asyncpg.InterfaceError
        ):
            advice = (
                "the server cannot be reached or dropped the connection; check that it "
                "runs and accepts connections from here (host, port, pg_hba.conf, TLS); "
                "the next cycle retries"
            )
        else:
            advice = "check the server's log and store.url"
        return StoreError(f"postgresql store {self._where}: cannot {action}: {detail}; {advice}")

    async def _count(self, table: str, source: str | None) -> int:
        async with self._tx(f"count {table}") as conn:
            if source is None:
                value = await conn.fetchval(f"SELECT count(*) FROM {table}")
            else:
                value = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE source = $1", source
                )
        return int(value)
