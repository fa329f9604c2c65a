"""The outbox in the SQLite store: claiming with leases, marking, dead letters.

Invariants:
- Functions here run inside a transaction the caller opened; `claim` needs a write
  transaction (`BEGIN IMMEDIATE`), which is what makes its select-then-update atomic
  against every other claimer, in this process or another.
- A lease is `next_attempt_at` pushed to the lease's end: a leased row is simply not
  due, so lease expiry needs no sweeper and a crashed claimer's rows come back alone.
- Only pending rows are leased, retried or killed; delivered is final (a dead row may
  still become delivered, when a slow attempt succeeded after all).
- Row statuses are 'pending', 'delivered', 'dead' and 'silenced' (settled without
  sending: a silence matched when it fell due); nothing else is ever written.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from relay.domain.codec import notification_from_dict
from relay.store._sqlite_base import SqliteBase
from relay.store._sqlite_rows import chunks, decode_time, encode_time, marks, time_or_none
from relay.store.records import DeadLetter, OutboxCounts, OutboxItem

# A sink's error can quote a whole response body; the outbox keeps its head.
MAX_ERROR_CHARS = 2000

# A notification waits while an earlier one about the same alert is still pending for
# the sink (being retried, say): a resolve never overtakes its firing.
DUE_SELECT = (
    "SELECT seq, attempts, enqueued_at, last_error, body FROM outbox "
    "WHERE sink = ? AND status = 'pending' AND next_attempt_at <= ? "
    "AND NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.alert_id = outbox.alert_id "
    "AND earlier.sink = outbox.sink AND earlier.status = 'pending' AND earlier.seq < outbox.seq) "
    "ORDER BY next_attempt_at, seq LIMIT ?"
)
_LEASE = "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ? WHERE seq = ?"
_DELIVERED = (
    "UPDATE outbox SET status = 'delivered', delivered_at = ?, dead_at = NULL "
    "WHERE sink = ? AND id = ? AND status <> 'delivered'"
)
_SILENCED = (
    "UPDATE outbox SET status = 'silenced', delivered_at = ?, last_error = ? "
    "WHERE sink = ? AND id = ? AND status = 'pending'"
)
_RETRY = (
    "UPDATE outbox SET next_attempt_at = ?, last_error = ? "
    "WHERE sink = ? AND id = ? AND status = 'pending'"
)
_DEAD = (
    "UPDATE outbox SET status = 'dead', dead_at = ?, last_error = ? "
    "WHERE sink = ? AND id = ? AND status = 'pending'"
)
DEAD_SELECT = "SELECT attempts, enqueued_at, dead_at, last_error, body FROM outbox"
NEXT_DUE = "SELECT min(next_attempt_at) FROM outbox WHERE sink = ? AND status = 'pending'"
COUNT_PENDING = "SELECT sink, count(*) FROM outbox WHERE status = 'pending' GROUP BY sink"
COUNT_DEAD = "SELECT sink, count(*) FROM outbox WHERE status = 'dead' GROUP BY sink"


async def claim(
    conn: aiosqlite.Connection, sink: str, *, now: str, lease_end: str, limit: int
) -> list[Any]:
    """Lease up to `limit` due rows of `sink` until `lease_end`; their rows as they were
    before the lease (attempts not yet counted)."""
    rows = list(await conn.execute_fetchall(DUE_SELECT, (sink, now, limit)))
    if rows:
        await conn.executemany(_LEASE, [(lease_end, row[0]) for row in rows])
    return rows


def outbox_item(row: Any) -> OutboxItem:
    return OutboxItem(
        notification=notification_from_dict(json.loads(row[4])),
        attempts=int(row[1]),
        first_enqueued_at=decode_time(row[2]),
        last_error=row[3],
    )


async def mark_delivered(
    conn: aiosqlite.Connection, sink: str, ids: Sequence[str], *, now: str
) -> int:
    async with conn.executemany(_DELIVERED, [(now, sink, i) for i in ids]) as cursor:
        return max(cursor.rowcount, 0)


async def mark_silenced(
    conn: aiosqlite.Connection, sink: str, ids: Sequence[str], *, reason: str, now: str
) -> int:
    params = [(now, reason[:MAX_ERROR_CHARS], sink, i) for i in ids]
    async with conn.executemany(_SILENCED, params) as cursor:
        return max(cursor.rowcount, 0)


async def mark_retry(
    conn: aiosqlite.Connection, sink: str, notification_id: str, *, next_attempt_at: str, error: str
) -> bool:
    params = (next_attempt_at, error[:MAX_ERROR_CHARS], sink, notification_id)
    async with conn.execute(_RETRY, params) as cursor:
        return cursor.rowcount > 0


async def mark_dead(
    conn: aiosqlite.Connection, sink: str, notification_id: str, *, reason: str, now: str
) -> bool:
    async with conn.execute(
        _DEAD, (now, reason[:MAX_ERROR_CHARS], sink, notification_id)
    ) as cursor:
        return cursor.rowcount > 0


def dead_query(*, sink: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    where, params = _dead_filter(sink, None)
    sql = f"{DEAD_SELECT} WHERE {where} ORDER BY dead_at DESC, seq DESC LIMIT ?"
    return sql, (*params, limit)


def dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        notification=notification_from_dict(json.loads(row[4])),
        attempts=int(row[0]),
        first_enqueued_at=decode_time(row[1]),
        dead_at=decode_time(row[2]),
        reason=row[3] or "",
    )


async def retry_dead(
    conn: aiosqlite.Connection, *, now: str, sink: str | None, ids: Collection[str] | None
) -> int:
    # Replayed rows start over: due now, no attempts, and `max_age` counted from now,
    # or they would go straight back to the dead letters.
    return await _each_chunk(
        conn,
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
        "enqueued_at = ?, dead_at = NULL WHERE ",
        (now, now),
        sink=sink,
        ids=ids,
    )


async def purge_dead(
    conn: aiosqlite.Connection, *, sink: str | None, ids: Collection[str] | None
) -> int:
    return await _each_chunk(conn, "DELETE FROM outbox WHERE ", (), sink=sink, ids=ids)


async def counts(conn: aiosqlite.Connection) -> dict[str, OutboxCounts]:
    pending: dict[str, int] = {
        row[0]: int(row[1]) for row in await conn.execute_fetchall(COUNT_PENDING)
    }
    dead: dict[str, int] = {row[0]: int(row[1]) for row in await conn.execute_fetchall(COUNT_DEAD)}
    return {
        sink: OutboxCounts(pending=pending.get(sink, 0), dead=dead.get(sink, 0))
        for sink in sorted(pending.keys() | dead.keys())
    }


async def _each_chunk(
    conn: aiosqlite.Connection,
    head: str,
    head_params: tuple[Any, ...],
    *,
    sink: str | None,
    ids: Collection[str] | None,
) -> int:
    if ids is None:
        groups: list[Sequence[str] | None] = [None]
    else:
        if isinstance(ids, str):
            # A lone id is a Collection[str] too, of its characters: refuse the mistake.
            raise TypeError("pass a collection of notification ids, not one id")
        groups = list(chunks(list(dict.fromkeys(ids))))
    changed = 0
    for group in groups:
        where, params = _dead_filter(sink, group)
        async with conn.execute(head + where, (*head_params, *params)) as cursor:
            changed += max(cursor.rowcount, 0)
    return changed


def _dead_filter(sink: str | None, ids: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
    where = ["status = 'dead'"]
    params: list[Any] = []
    if sink is not None:
        where.append("sink = ?")
        params.append(sink)
    if ids is not None:
        where.append(f"id IN ({marks(len(ids))})")
        params.extend(ids)
    return " AND ".join(where), tuple(params)


class SqliteOutbox(SqliteBase):
    """The outbox methods of `SqliteStore` (see `relay.store.base.Store` for the contract)."""

    async def claim_due(
        self, sink: str, *, now: datetime, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s!r}")
        if limit <= 0:
            return []
        at, lease_end = encode_time(now), encode_time(now + timedelta(seconds=lease_s))
        async with self._writing("claim notifications") as conn:
            rows = await claim(conn, sink, now=at, lease_end=lease_end, limit=limit)
        return [outbox_item(row) for row in rows]

    async def mark_delivered(self, sink: str, ids: Collection[str], *, now: datetime) -> int:
        if isinstance(ids, str):
            raise TypeError("mark_delivered takes a collection of ids, not one id")
        at = encode_time(now)
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        async with self._writing("mark notifications delivered") as conn:
            return await mark_delivered(conn, sink, wanted, now=at)

    async def mark_silenced(
        self, sink: str, ids: Collection[str], *, reason: str, now: datetime
    ) -> int:
        if isinstance(ids, str):
            raise TypeError("mark_silenced takes a collection of ids, not one id")
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return 0
        async with self._writing("mark notifications silenced") as conn:
            return await mark_silenced(conn, sink, wanted, reason=reason, now=encode_time(now))

    async def mark_retry(
        self, sink: str, notification_id: str, *, next_attempt_at: datetime, error: str
    ) -> bool:
        at = encode_time(next_attempt_at)
        async with self._writing("schedule a notification retry") as conn:
            return await mark_retry(conn, sink, notification_id, next_attempt_at=at, error=error)

    async def mark_dead(
        self, sink: str, notification_id: str, *, reason: str, now: datetime
    ) -> bool:
        at = encode_time(now)
        async with self._writing("move a notification to the dead letters") as conn:
            return await mark_dead(conn, sink, notification_id, reason=reason, now=at)

    async def dead_letters(self, *, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        sql, params = dead_query(sink=sink, limit=limit)
        async with self._reading("list dead letters") as conn:
            rows = await conn.execute_fetchall(sql, params)
        return [dead_letter(row) for row in rows]

    async def retry_dead(
        self, *, now: datetime, sink: str | None = None, ids: Collection[str] | None = None
    ) -> int:
        at = encode_time(now)
        async with self._writing("replay dead letters") as conn:
            return await retry_dead(conn, now=at, sink=sink, ids=ids)

    async def purge_dead(
        self, *, sink: str | None = None, ids: Collection[str] | None = None
    ) -> int:
        async with self._writing("purge dead letters") as conn:
            return await purge_dead(conn, sink=sink, ids=ids)

    async def outbox_counts(self) -> dict[str, OutboxCounts]:
        async with self._reading("count outbox rows") as conn:
            return await counts(conn)

    async def next_due_at(self, sink: str) -> datetime | None:
        async with self._reading("find the next due notification") as conn:
            rows = list(await conn.execute_fetchall(NEXT_DUE, (sink,)))
        return time_or_none(rows[0][0]) if rows else None
