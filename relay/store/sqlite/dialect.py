"""The SQLite dialect of the store, and its sessions: `?` placeholders, ISO text
timestamps, `IN (...)` lists, and the statements only SQLite runs this way.

Invariants:
- Timestamps are fixed-width ISO 8601 UTC text (`2026-01-02T03:04:05.000006Z`): exact
  to the microsecond, readable in the sqlite3 shell, ordered when compared as text. A
  naive datetime is refused rather than guessed.
- An id list binds one parameter per id, at most `IDS_PER_QUERY` a statement (SQLite
  accepts up to 32766; the store stays far below it).
- A session runs inside a write transaction its store opened with `BEGIN IMMEDIATE`
  when it writes: that lock is what makes `claim`'s select-then-update, and
  `store_alerts`' look-up-then-insert, atomic against every other writer, in this
  process or another.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

import aiosqlite

from relay.store import sql
from relay.store.backend import Dialect, Params, Row, Session, from_iso_utc, iso_utc

IDS_PER_QUERY = 500

# `unixepoch()` (SQLite 3.38+) parses a timestamp in about half the time of `strftime`.
_HAS_UNIXEPOCH = sqlite3.sqlite_version_info >= (3, 38, 0)


def epoch_us_sql(column: str, *, unixepoch: bool) -> str:
    """SQL for the exact integer microseconds since the epoch of an ISO text `column`."""
    # Whole seconds from the text cut before its fraction: SQLite's date functions round
    # a fraction to the millisecond, so `05.9996` would count as second 06. The
    # microseconds come from the fixed-width text (`...T03:04:05.000006Z`: characters
    # 21-26). Integers only, so exact.
    whole = f"substr({column}, 1, 19)"
    seconds = f"unixepoch({whole})" if unixepoch else f"CAST(strftime('%s', {whole}) AS INTEGER)"
    return f"({seconds} * 1000000 + CAST(substr({column}, 21, 6) AS INTEGER))"


_ALERT_INSERT = sql.insert("alerts", sql.ALERT_COLUMNS)
_ALERT_UPDATE = (
    "UPDATE alerts SET state = :state, updated_at = :updated_at, body = :body WHERE id = :id"
)
# A per-execution alert raised again (an execution still stuck) is still live: touching
# it keeps prune from forgetting it, which would let it fire anew.
_ALERT_TOUCH = "UPDATE alerts SET updated_at = :updated_at WHERE id = :id"
_ALERTS_STORED = "SELECT id, windowed FROM alerts WHERE "
# Pending, due at once; a known (id, sink) is left alone, so replays enqueue nothing.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, sink, alert_id, kind, status, enqueued_at, next_attempt_at, "
    "group_key, body) VALUES (:id, :sink, :alert_id, :kind, 'pending', :created_at, "
    ":next_attempt_at, :group_key, :body) ON CONFLICT (id, sink) DO NOTHING"
)
_LEASE = (
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = :lease_end, claimed = TRUE "
    "WHERE seq = :seq"
)


_TOTAL_CHANGES_WRAP = 2**32


class SqliteDialect(Dialect):
    numbered_placeholders: ClassVar[bool] = False
    ids_per_statement: ClassVar[int | None] = IDS_PER_QUERY

    def any_of(self, column: str, *, marker: str, ids: Sequence[str]) -> tuple[str, Params]:
        names = [f"{marker}_{n}" for n in range(len(ids))]
        condition = f"{column} IN ({', '.join(f':{name}' for name in names)})"
        return condition, dict(zip(names, ids, strict=True))

    def encode_time(self, value: datetime) -> str:
        return iso_utc(value)

    def decode_time(self, value: Any) -> datetime:
        return from_iso_utc(value)

    def epoch_us(self, column: str) -> str:
        return epoch_us_sql(column, unixepoch=_HAS_UNIXEPOCH)


SQLITE = SqliteDialect()


class SqliteSession(Session):
    """A transaction on the store's aiosqlite connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(SQLITE)
        self._conn = conn

    async def _fetch(self, query: str, args: Sequence[Any]) -> list[Row]:
        return list(await self._conn.execute_fetchall(query, args))

    async def _execute(self, query: str, args: Sequence[Any]) -> int:
        # One trip to aiosqlite's thread, where a cursor would take two (execute, then
        # close); the store's lock keeps every other statement off the connection, so
        # the change in `total_changes` is this statement's (the schema has no triggers).
        before = self._conn.total_changes
        await self._conn.execute_fetchall(query, args)
        return self._changed_since(before)

    async def _execute_many(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(query, args)

    async def store_alerts(self, rows: Sequence[Params]) -> tuple[frozenset[str], frozenset[str]]:
        stored: dict[str, bool] = {}
        for chunk in SQLITE.id_chunks([row["id"] for row in rows]):
            condition, params = SQLITE.any_of("id", marker="ids", ids=chunk)
            found = await self.fetch(_ALERTS_STORED + condition, **params)
            stored.update((row["id"], bool(row["windowed"])) for row in found)
        await self.execute_many(_ALERT_INSERT, [row for row in rows if row["id"] not in stored])
        await self.execute_many(_ALERT_UPDATE, [row for row in rows if stored.get(row["id"])])
        kept = [row for row in rows if stored.get(row["id"]) is False]
        await self.execute_many(_ALERT_TOUCH, kept)
        new = frozenset(row["id"] for row in rows if row["id"] not in stored)
        return new, frozenset(row["id"] for row in kept)

    async def enqueue(self, rows: Sequence[Params]) -> int:
        before = self._conn.total_changes  # as `_execute` counts
        await self._conn.executemany(*self._bind_many(_OUTBOX_INSERT, rows))
        return self._changed_since(before)

    def _changed_since(self, before: int) -> int:
        """Rows changed since `total_changes` was `before`. Python 3.11 reads SQLite's
        32-bit counter, which wraps in a long-lived process: the difference is taken
        modulo 2**32."""
        return (self._conn.total_changes - before) % _TOTAL_CHANGES_WRAP

    async def claim(
        self, *, sink: str, now: Any, lease_end: Any, limit: int, grouped: bool | None = None
    ) -> list[Row]:
        statement = sql.DUE_SELECT.format(grouped=sql.grouped_filter(grouped))
        rows = await self.fetch(statement, sink=sink, now=now, limit=limit)
        return await self._lease(rows, lease_end=lease_end)

    async def claim_groups(
        self, *, sink: str, now: Any, lease_end: Any, keys: Sequence[str], limit: int
    ) -> list[Row]:
        condition, params = SQLITE.any_of("group_key", marker="keys", ids=keys)
        statement = sql.GROUP_DUE_SELECT.format(keys=condition)
        rows = await self.fetch(statement, sink=sink, now=now, limit=limit, **params)
        return await self._lease(rows, lease_end=lease_end)

    async def claim_messages(
        self, *, sink: str, lease_end: Any, message_ids: Sequence[str], limit: int
    ) -> list[Row]:
        condition, params = SQLITE.any_of("message_id", marker="messages", ids=message_ids)
        statement = sql.MESSAGE_REST_SELECT.format(messages=condition)
        rows = await self.fetch(statement, sink=sink, limit=limit, **params)
        return await self._lease(rows, lease_end=lease_end)

    async def _lease(self, rows: list[Row], *, lease_end: Any) -> list[Row]:
        await self.execute_many(_LEASE, [{"lease_end": lease_end, "seq": r["seq"]} for r in rows])
        return rows
