"""Which replica polls which source: session-level advisory locks of PostgreSQL.

Leading `source` means holding the session-level advisory lock
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
The one-key locks here live in another key space than the two-key lock that serialises
migrations (`relay.store.postgres.schema`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from relay.store.postgres.errors import CONNECTION_ERRORS, PgErrors

log = structlog.get_logger("relay.store.postgres")

CONNECT_TIMEOUT_S = 10.0
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


class Leadership:
    """The sources one store leads, and the connection that holds their locks."""

    def __init__(self, url: str, *, errors: PgErrors) -> None:
        self._url = url
        self._errors = errors
        self._conn: Any = None
        self._leading: set[str] = set()
        self._lock = asyncio.Lock()

    async def try_lead(self, source: str) -> bool:
        """Whether this store holds (or just took) the lock of `source`. Raises
        `StoreError` when the server cannot be reached, after giving up whatever it led."""
        async with self._lock:
            conn = self._conn
            if conn is not None and not await self._alive(conn):
                log.warning(
                    "store.leadership_lost", url=self._errors.where, sources=sorted(self._leading)
                )
                await self._drop()
                conn = None
            if source in self._leading:
                return True
            with self._errors.mapped("take the lead of a source"):
                if conn is None:
                    conn = await asyncpg.connect(
                        self._url, timeout=CONNECT_TIMEOUT_S, server_settings=_LEAD_SETTINGS
                    )
                    self._conn = conn
                got = bool(await conn.fetchval(_LEAD_KEY, source, timeout=_LEAD_CHECK_TIMEOUT_S))
            if got:
                self._leading.add(source)
                log.info("store.leading", url=self._errors.where, source=source)
            return got

    async def release(self) -> None:
        """Stop leading every source (closing the session releases its locks)."""
        async with self._lock:
            await self._drop()

    async def _alive(self, conn: Any) -> bool:
        if conn.is_closed():
            return False
        try:
            await conn.fetchval("SELECT 1", timeout=_LEAD_CHECK_TIMEOUT_S)
        except CONNECTION_ERRORS:
            return False
        return True

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._leading.clear()
        if conn is not None and not conn.is_closed():
            try:
                # Closing the session releases its advisory locks.
                await asyncio.wait_for(conn.close(), _LEAD_CHECK_TIMEOUT_S)
            except CONNECTION_ERRORS:
                conn.terminate()
