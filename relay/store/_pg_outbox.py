"""The outbox in the PostgreSQL store: claiming with leases, marking, dead letters.

Same semantics as `_sqlite_outbox` (leases are `next_attempt_at` pushed to the lease's
end; only pending rows are leased, retried or killed; a resolve never overtakes an
earlier pending notification about the same alert). What differs is how claims stay
exclusive: instead of queueing on one write lock, each claim locks the rows it takes
(`FOR UPDATE SKIP LOCKED`) and leases them in the same statement, so concurrent
claimers in any number of replicas skip each other's rows rather than wait for them,
and a row whose lease another claimer committed meanwhile is re-checked (no longer due)
before it is taken.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from relay.domain.codec import notification_from_dict
from relay.store._pg_base import (
    PgBase,
    clean_text,
    id_list,
    out,
    out_or_none,
    row_count,
    utc,
)
from relay.store._sqlite_outbox import MAX_ERROR_CHARS
from relay.store.records import DeadLetter, OutboxCounts, OutboxItem

CLAIM = (
    "WITH due AS ("
    " SELECT seq, next_attempt_at FROM outbox"
    " WHERE sink = $1 AND status = 'pending' AND next_attempt_at <= $2"
    " AND NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.alert_id = outbox.alert_id"
    " AND earlier.sink = outbox.sink AND earlier.status = 'pending' AND earlier.seq < outbox.seq)"
    " ORDER BY next_attempt_at, seq LIMIT $3"
    " FOR UPDATE OF outbox SKIP LOCKED) "
    "UPDATE outbox SET attempts = outbox.attempts + 1, next_attempt_at = $4 FROM due "
    "WHERE outbox.seq = due.seq "
    "RETURNING due.next_attempt_at, outbox.seq, outbox.attempts - 1, outbox.enqueued_at, "
    "outbox.last_error, outbox.body"
)
_DELIVERED = (
    "UPDATE outbox SET status = 'delivered', delivered_at = $1, dead_at = NULL "
    "WHERE sink = $2 AND id = ANY($3::text[]) AND status <> 'delivered'"
)
_SILENCED = (
    "UPDATE outbox SET status = 'silenced', delivered_at = $1, last_error = $2 "
    "WHERE sink = $3 AND id = ANY($4::text[]) AND status = 'pending'"
)
_RETRY = (
    "UPDATE outbox SET next_attempt_at = $1, last_error = $2 "
    "WHERE sink = $3 AND id = $4 AND status = 'pending'"
)
_DEAD = (
    "UPDATE outbox SET status = 'dead', dead_at = $1, last_error = $2 "
    "WHERE sink = $3 AND id = $4 AND status = 'pending'"
)
_DEAD_SELECT = "SELECT attempts, enqueued_at, dead_at, last_error, body FROM outbox"
NEXT_DUE = "SELECT min(next_attempt_at) FROM outbox WHERE sink = $1 AND status = 'pending'"
_COUNTS = (
    "SELECT sink, count(*) FILTER (WHERE status = 'pending'), "
    "count(*) FILTER (WHERE status = 'dead') FROM outbox "
    "WHERE status IN ('pending', 'dead') GROUP BY sink ORDER BY sink"
)


def _error_text(text: str) -> str:
    return clean_text(text[:MAX_ERROR_CHARS])


def _dead_filter(sink: str | None, ids: list[str] | None, *, first: int) -> tuple[str, list[Any]]:
    where = ["status = 'dead'"]
    params: list[Any] = []
    if sink is not None:
        params.append(sink)
        where.append(f"sink = ${first + len(params) - 1}")
    if ids is not None:
        params.append(ids)
        where.append(f"id = ANY(${first + len(params) - 1}::text[])")
    return " AND ".join(where), params


class PgOutbox(PgBase):
    """The outbox methods of `PostgresStore` (see `relay.store.base.Store`)."""

    async def claim_due(
        self, sink: str, *, now: datetime, limit: int, lease_s: float
    ) -> list[OutboxItem]:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s!r}")
        if limit <= 0:
            return []
        at = utc(now)
        lease_end = at + timedelta(seconds=lease_s)
        async with self._tx("claim notifications") as conn:
            rows = await conn.fetch(CLAIM, sink, at, limit, lease_end)
        # RETURNING has no order: put them back in due order, enqueue order among equals.
        ordered = sorted(rows, key=lambda r: (r[0], r[1]))
        return [
            OutboxItem(
                notification=notification_from_dict(json.loads(r[5])),
                attempts=int(r[2]),
                first_enqueued_at=out(r[3]),
                last_error=r[4],
            )
            for r in ordered
        ]

    async def mark_delivered(self, sink: str, ids: Collection[str], *, now: datetime) -> int:
        wanted = id_list(ids, "mark_delivered")
        at = utc(now)
        if not wanted:
            return 0
        async with self._tx("mark notifications delivered") as conn:
            return row_count(await conn.execute(_DELIVERED, at, sink, wanted))

    async def mark_silenced(
        self, sink: str, ids: Collection[str], *, reason: str, now: datetime
    ) -> int:
        wanted = id_list(ids, "mark_silenced")
        at = utc(now)
        if not wanted:
            return 0
        async with self._tx("mark notifications silenced") as conn:
            return row_count(await conn.execute(_SILENCED, at, _error_text(reason), sink, wanted))

    async def mark_retry(
        self, sink: str, notification_id: str, *, next_attempt_at: datetime, error: str
    ) -> bool:
        at = utc(next_attempt_at)
        async with self._tx("schedule a notification retry") as conn:
            status = await conn.execute(_RETRY, at, _error_text(error), sink, notification_id)
        return row_count(status) > 0

    async def mark_dead(
        self, sink: str, notification_id: str, *, reason: str, now: datetime
    ) -> bool:
        at = utc(now)
        async with self._tx("move a notification to the dead letters") as conn:
            status = await conn.execute(_DEAD, at, _error_text(reason), sink, notification_id)
        return row_count(status) > 0

    async def dead_letters(self, *, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        where, params = _dead_filter(sink, None, first=1)
        sql = (
            f"{_DEAD_SELECT} WHERE {where} ORDER BY dead_at DESC, seq DESC LIMIT ${len(params) + 1}"
        )
        async with self._tx("list dead letters") as conn:
            rows = await conn.fetch(sql, *params, limit)
        return [
            DeadLetter(
                notification=notification_from_dict(json.loads(r[4])),
                attempts=int(r[0]),
                first_enqueued_at=out(r[1]),
                dead_at=out(r[2]),
                reason=r[3] or "",
            )
            for r in rows
        ]

    async def retry_dead(
        self, *, now: datetime, sink: str | None = None, ids: Collection[str] | None = None
    ) -> int:
        at = utc(now)
        wanted = None if ids is None else id_list(ids, "retry_dead")
        if wanted == []:
            return 0
        # Replayed rows start over: due now, no attempts, and `max_age` counted from now.
        where, params = _dead_filter(sink, wanted, first=2)
        sql = (
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, "
            f"enqueued_at = $1, dead_at = NULL WHERE {where}"
        )
        async with self._tx("replay dead letters") as conn:
            return row_count(await conn.execute(sql, at, *params))

    async def purge_dead(
        self, *, sink: str | None = None, ids: Collection[str] | None = None
    ) -> int:
        wanted = None if ids is None else id_list(ids, "purge_dead")
        if wanted == []:
            return 0
        where, params = _dead_filter(sink, wanted, first=1)
        async with self._tx("purge dead letters") as conn:
            return row_count(await conn.execute(f"DELETE FROM outbox WHERE {where}", *params))

    async def outbox_counts(self) -> dict[str, OutboxCounts]:
        async with self._tx("count outbox rows") as conn:
            rows = await conn.fetch(_COUNTS)
        return {r[0]: OutboxCounts(pending=int(r[1]), dead=int(r[2])) for r in rows}

    async def next_due_at(self, sink: str) -> datetime | None:
        async with self._tx("find the next due notification") as conn:
            value = await conn.fetchval(NEXT_DUE, sink)
        return out_or_none(value)
