"""Alerts in the SQLite store: how a cycle stores them, how they are listed and paged.

Invariants:
- Functions here run inside a transaction the caller opened (`SqliteStore._writing`
  or `_reading`); they never commit.
- A per-execution alert row is written once and never updated; a windowed alert row
  (an alert without `execution`) is updated in place, keeping its `created_at`.
- Encoding to rows happens before the caller takes the store's lock (`alert_row`),
  decoding after it is released (`stored_alert`): the lock covers statements only.
- Paging is keyset paging on (created_at, id), newest first: the cursor is the key of
  the last alert of a page, so alerts added meanwhile never shift a later page.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast, get_args

import aiosqlite

from relay.domain.alerts import Alert, Notification
from relay.domain.codec import alert_from_dict, alert_to_dict, notification_to_dict
from relay.store._sqlite_base import SqliteBase
from relay.store._sqlite_rows import (
    chunks,
    compact_json,
    decode_time,
    encode_time,
    marks,
    time_or_none,
)
from relay.store.records import AlertDelivery, AlertPage, DeliveryStatus, StoredAlert
from relay.vocab import AlertState

AlertRow = tuple[str, str, str, str, int, str, str, str]
OutboxRow = tuple[str, str, str, str, str, str, str]

ALERT_SELECT = "SELECT id, created_at, updated_at, body FROM alerts"
_ALERT_INSERT = (
    "INSERT INTO alerts (id, source, rule, state, windowed, created_at, updated_at, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_ALERT_UPDATE = "UPDATE alerts SET state = ?, updated_at = ?, body = ? WHERE id = ?"
_ALERT_TOUCH = "UPDATE alerts SET updated_at = ? WHERE id = ?"
# Pending, due at once; a known (id, sink) is left alone, so replays enqueue nothing.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, sink, alert_id, kind, status, enqueued_at, next_attempt_at, body) "
    "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (id, sink) DO NOTHING"
)
_DELIVERIES_SELECT = (
    "SELECT alert_id, id, sink, kind, status, attempts, last_error, delivered_at FROM outbox"
)
# Windowed alerts still firing are kept, and so is any alert a sink may still receive
# (pending) or an operator may replay (dead).
PRUNE_ALERTS = (
    "DELETE FROM alerts WHERE updated_at < ? AND NOT (windowed = 1 AND state = 'firing') "
    "AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.alert_id = alerts.id "
    "AND outbox.status IN ('pending', 'dead'))"
)
PRUNE_DELIVERED = (
    "DELETE FROM outbox WHERE status IN ('delivered', 'silenced') AND delivered_at < ?"
)


def is_windowed(alert: Alert) -> bool:
    """Windowed alerts are about a group, not an execution, and change as it does."""
    return alert.execution is None


def alert_row(alert: Alert, *, at: datetime) -> AlertRow:
    """The row of a new alert stored at `at` (the cycle's time)."""
    when = encode_time(at)
    body = compact_json(alert_to_dict(alert))
    return (
        alert.id,
        alert.source,
        alert.rule,
        alert.state,
        int(is_windowed(alert)),
        when,
        when,
        body,
    )


def outbox_row(notification: Notification) -> OutboxRow:
    n = notification
    created = encode_time(n.created_at)
    body = compact_json(notification_to_dict(n))
    return (n.id, n.sink, n.alert.id, n.kind, created, created, body)


async def store_alerts(
    conn: aiosqlite.Connection, rows: Sequence[AlertRow]
) -> tuple[frozenset[str], frozenset[str]]:
    """Insert new alerts, update windowed ones; return (new ids, ids of per-execution
    alerts that were already stored and so were left as they were)."""
    # Within one batch a per-execution alert keeps its first version (it fires once)
    # and a windowed one its last (the latest state of its group).
    batch: dict[str, AlertRow] = {}
    for row in rows:
        if row[4] or row[0] not in batch:
            batch[row[0]] = row
    existing: dict[str, bool] = {}
    for chunk in chunks(list(batch)):
        found = await conn.execute_fetchall(
            f"SELECT id, windowed FROM alerts WHERE id IN ({marks(len(chunk))})", chunk
        )
        existing.update((row[0], bool(row[1])) for row in found)
    new = [row for alert_id, row in batch.items() if alert_id not in existing]
    updates = [
        (row[3], row[6], row[7], alert_id)
        for alert_id, row in batch.items()
        if existing.get(alert_id)
    ]
    if new:
        await conn.executemany(_ALERT_INSERT, new)
    if updates:
        await conn.executemany(_ALERT_UPDATE, updates)
    kept = frozenset(alert_id for alert_id, windowed in existing.items() if not windowed)
    if kept:
        # A per-execution alert raised again (an execution still stuck) is still live:
        # touching it keeps prune from forgetting it, which would let it fire anew.
        await conn.executemany(_ALERT_TOUCH, [(batch[alert_id][6], alert_id) for alert_id in kept])
    return frozenset(row[0] for row in new), kept


async def enqueue(
    conn: aiosqlite.Connection, rows: Sequence[OutboxRow], *, fired_before: frozenset[str]
) -> int:
    """Insert outbox rows, except those about an alert in `fired_before`; return how
    many were inserted."""
    wanted = [row for row in rows if row[2] not in fired_before]
    if not wanted:
        return 0
    async with conn.executemany(_OUTBOX_INSERT, wanted) as cursor:
        return max(cursor.rowcount, 0)


# --- listing --------------------------------------------------------------------------


def encode_cursor(created_at: str, alert_id: str) -> str:
    raw = json.dumps([created_at, alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, id) key a cursor holds; `ValueError` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"malformed alert cursor {cursor!r}") from None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)):
        raise ValueError(f"malformed alert cursor {cursor!r}")
    try:
        decode_time(key[0])  # a cursor with a bad time is as malformed as bad base64
    except ValueError:
        raise ValueError(f"malformed alert cursor {cursor!r}") from None
    return key[0], key[1]


def list_query(
    *,
    rule: str | None,
    state: str | None,
    source: str | None,
    since: datetime | None,
    limit: int,
    before: str | None,
) -> tuple[str, tuple[Any, ...]]:
    """The statement of one page, reading one row more than `limit` to know if another
    page follows."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("rule", rule), ("state", state), ("source", source)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("updated_at >= ?")
        params.append(encode_time(since))
    if before is not None:
        where.append("(created_at, id) < (?, ?)")
        params.extend(decode_cursor(before))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"{ALERT_SELECT}{clause} ORDER BY created_at DESC, id DESC LIMIT ?"
    return sql, (*params, limit + 1)


async def deliveries_of(
    conn: aiosqlite.Connection, alert_ids: Sequence[str]
) -> dict[str, list[Any]]:
    """Outbox rows of each alert, in enqueue order."""
    found: dict[str, list[Any]] = {}
    for chunk in chunks(alert_ids):
        rows = await conn.execute_fetchall(
            f"{_DELIVERIES_SELECT} WHERE alert_id IN ({marks(len(chunk))}) ORDER BY seq", chunk
        )
        for row in rows:
            found.setdefault(row[0], []).append(row)
    return found


def stored_alert(row: Any, deliveries: Sequence[Any]) -> StoredAlert:
    return StoredAlert(
        alert=alert_from_dict(json.loads(row[3])),
        created_at=decode_time(row[1]),
        updated_at=decode_time(row[2]),
        deliveries=tuple(
            AlertDelivery(
                notification_id=d[1],
                sink=d[2],
                kind=d[3],
                status=_delivery_status(d[4]),
                attempts=int(d[5]),
                last_error=d[6],
                delivered_at=time_or_none(d[7]),
            )
            for d in deliveries
        ),
    )


def _delivery_status(value: str) -> DeliveryStatus:
    if value not in get_args(DeliveryStatus):
        raise ValueError(f"unknown outbox status {value!r}")
    return cast(DeliveryStatus, value)


class SqliteAlerts(SqliteBase):
    """The alert listing of `SqliteStore` (see `relay.store.base.Store` for the contract)."""

    async def list_alerts(
        self,
        *,
        rule: str | None = None,
        state: AlertState | None = None,
        source: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> AlertPage:
        if limit <= 0:
            return AlertPage(alerts=[], next_cursor=None)
        sql, params = list_query(
            rule=rule, state=state, source=source, since=since, limit=limit, before=before
        )
        async with self._reading("list alerts") as conn:
            rows = list(await conn.execute_fetchall(sql, params))[: limit + 1]
            page, more = rows[:limit], len(rows) > limit
            deliveries = await deliveries_of(conn, [row[0] for row in page])
        alerts = [stored_alert(row, deliveries.get(row[0], ())) for row in page]
        last = page[-1] if more else None
        return AlertPage(
            alerts=alerts, next_cursor=None if last is None else encode_cursor(last[1], last[0])
        )

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        async with self._reading("read an alert") as conn:
            rows = list(await conn.execute_fetchall(f"{ALERT_SELECT} WHERE id = ?", (alert_id,)))
            deliveries = await deliveries_of(conn, [alert_id]) if rows else {}
        return stored_alert(rows[0], deliveries.get(alert_id, ())) if rows else None
