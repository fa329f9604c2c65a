"""Alerts, silences and group states in the PostgreSQL store.

Same semantics as `_sqlite_alerts` and `_sqlite_rules` (see those for the why):
- A per-execution alert row is written once and never updated (only its `updated_at`
  is touched when it is raised again); a windowed alert row is updated in place.
- Listing is keyset paging on (created_at, id), newest first, with the same opaque
  cursor as the SQLite store.
- Functions taking `conn` run inside a transaction the caller opened; never commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast, get_args

from relay.domain.alerts import Alert, Notification
from relay.domain.codec import alert_from_dict, alert_to_dict, notification_to_dict
from relay.domain.silences import Silence, SilenceOrigin
from relay.domain.windows import GroupState
from relay.store._pg_base import PgBase, out, out_or_none, row_count, utc, utc_or_none
from relay.store._row_decode import group_from_row
from relay.store._sqlite_alerts import decode_cursor, encode_cursor, is_windowed
from relay.store._sqlite_rows import compact_json, decode_time, encode_time
from relay.store.records import AlertDelivery, AlertPage, DeliveryStatus, StoredAlert
from relay.vocab import AlertState

# (id, source, rule, state, windowed, created_at, updated_at, body)
AlertRow = tuple[str, str, str, str, bool, datetime, datetime, str]
# (id, sink, alert_id, kind, created_at, body)
OutboxRow = tuple[str, str, str, str, datetime, str]

_ALERT_INSERT = (
    "INSERT INTO alerts (id, source, rule, state, windowed, created_at, updated_at, body) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[], "
    "$6::timestamptz[], $7::timestamptz[], $8::text[]) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_ALERT_UPDATE = (
    "UPDATE alerts SET state = u.state, updated_at = u.updated_at, body = u.body "
    "FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) "
    "AS u(id, state, updated_at, body) WHERE alerts.id = u.id AND alerts.windowed"
)
# A per-execution alert raised again is still live: touching it keeps prune from
# forgetting it (which would let it fire anew). Returns the ids of those alerts.
_ALERT_TOUCH = (
    "UPDATE alerts SET updated_at = u.updated_at "
    "FROM unnest($1::text[], $2::timestamptz[]) AS u(id, updated_at) "
    "WHERE alerts.id = u.id AND NOT alerts.windowed RETURNING alerts.id"
)
# Pending, due at once, in the order given; a known (id, sink) is left alone.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, sink, alert_id, kind, status, enqueued_at, next_attempt_at, body) "
    "SELECT id, sink, alert_id, kind, 'pending', at, at, body FROM unnest($1::text[], "
    "$2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) WITH ORDINALITY "
    "AS n(id, sink, alert_id, kind, at, body, ord) ORDER BY ord "
    "ON CONFLICT (id, sink) DO NOTHING"
)
_ALERT_SELECT = "SELECT id, created_at, updated_at, body FROM alerts"
_DELIVERIES_SELECT = (
    "SELECT alert_id, id, sink, kind, status, attempts, last_error, delivered_at FROM outbox "
    "WHERE alert_id = ANY($1::text[]) ORDER BY seq"
)
PRUNE_ALERTS = (
    "DELETE FROM alerts WHERE updated_at < $1 AND NOT (windowed AND state = 'firing') "
    "AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.alert_id = alerts.id "
    "AND outbox.status IN ('pending', 'dead'))"
)
PRUNE_DELIVERED = (
    "DELETE FROM outbox WHERE status IN ('delivered', 'silenced') AND delivered_at < $1"
)

_SILENCE_COLUMNS = (
    "id, matchers, starts_at, ends_at, creator, comment, created_at, expired_at, origin"
)
_SILENCE_SELECT = f"SELECT {_SILENCE_COLUMNS} FROM silences"
_SILENCE_INSERT = (
    f"INSERT INTO silences ({_SILENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (id) DO NOTHING"
)
_LIVE_SILENCES = (
    f"{_SILENCE_SELECT} WHERE ends_at > $1 AND (expired_at IS NULL OR expired_at > $1) "
    "ORDER BY starts_at, id"
)
_EXPIRE_SILENCE = (
    "UPDATE silences SET expired_at = $1 "
    "WHERE id = $2 AND ends_at > $1 AND (expired_at IS NULL OR expired_at > $1)"
)
PRUNE_SILENCES = "DELETE FROM silences WHERE least(ends_at, coalesce(expired_at, ends_at)) < $1"

_GROUP_COLUMNS = (
    "source",
    "rule",
    "group_key",
    "group_labels",
    "firing",
    "episode",
    "fired_at",
    "last_notified_at",
    "reminders_sent",
    "value",
    "resolved_at",
    "updated_at",
)
_GROUP_SELECT = f"SELECT {', '.join(_GROUP_COLUMNS)} FROM group_states WHERE source = $1"
GROUP_UPSERT = (
    f"INSERT INTO group_states ({', '.join(_GROUP_COLUMNS)}) "
    f"VALUES ({', '.join(f'${n + 1}' for n in range(len(_GROUP_COLUMNS)))}) "
    "ON CONFLICT (source, rule, group_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _GROUP_COLUMNS[3:])
)
PRUNE_GROUPS = "DELETE FROM group_states WHERE NOT firing AND episode = 0 AND updated_at < $1"


def alert_row(alert: Alert, *, at: datetime) -> AlertRow:
    when = utc(at)
    body = compact_json(alert_to_dict(alert))
    windowed = is_windowed(alert)
    return (alert.id, alert.source, alert.rule, alert.state, windowed, when, when, body)


def outbox_row(notification: Notification) -> OutboxRow:
    n = notification
    body = compact_json(notification_to_dict(n))
    return (n.id, n.sink, n.alert.id, n.kind, utc(n.created_at), body)


def group_to_row(state: GroupState, *, at: datetime) -> tuple[Any, ...]:
    g = state
    return (
        g.source,
        g.rule,
        g.group_key,
        compact_json(dict(sorted(g.group.items()))),
        g.firing,
        g.episode,
        utc_or_none(g.fired_at),
        utc_or_none(g.last_notified_at),
        g.reminders_sent,
        g.value,
        utc_or_none(g.resolved_at),
        utc(at),
    )


def _columns(rows: Sequence[tuple[Any, ...]], *indexes: int) -> list[list[Any]]:
    return [[row[i] for row in rows] for i in indexes]


async def store_alerts(
    conn: Any, rows: Sequence[AlertRow]
) -> tuple[frozenset[str], frozenset[str]]:
    """Insert new alerts, update windowed ones; return (new ids, ids of per-execution
    alerts that were already stored and so were left as they were)."""
    # Within one batch a per-execution alert keeps its first version (it fires once)
    # and a windowed one its last (the latest state of its group).
    batch: dict[str, AlertRow] = {}
    for row in rows:
        if row[4] or row[0] not in batch:
            batch[row[0]] = row
    if not batch:
        return frozenset(), frozenset()
    inserted = await conn.fetch(_ALERT_INSERT, *_columns(list(batch.values()), *range(8)))
    new = frozenset(str(r[0]) for r in inserted)
    rest = [row for alert_id, row in batch.items() if alert_id not in new]
    kept: frozenset[str] = frozenset()
    if rest:
        # The stored row decides: windowed rows follow their group, others are touched.
        await conn.execute(_ALERT_UPDATE, *_columns(rest, 0, 3, 6, 7))
        touched = await conn.fetch(_ALERT_TOUCH, *_columns(rest, 0, 6))
        kept = frozenset(str(r[0]) for r in touched)
    return new, kept


async def enqueue(conn: Any, rows: Sequence[OutboxRow], *, fired_before: frozenset[str]) -> int:
    """Insert outbox rows, except those about an alert in `fired_before`; return how
    many were inserted."""
    wanted = [row for row in rows if row[2] not in fired_before]
    if not wanted:
        return 0
    return row_count(await conn.execute(_OUTBOX_INSERT, *_columns(wanted, *range(6))))


def _delivery_status(value: str) -> DeliveryStatus:
    if value not in get_args(DeliveryStatus):
        raise ValueError(f"unknown outbox status {value!r}")
    return cast(DeliveryStatus, value)


def _stored_alert(row: Any, deliveries: Sequence[Any]) -> StoredAlert:
    return StoredAlert(
        alert=alert_from_dict(json.loads(row[3])),
        created_at=out(row[1]),
        updated_at=out(row[2]),
        deliveries=tuple(
            AlertDelivery(
                notification_id=d[1],
                sink=d[2],
                kind=d[3],
                status=_delivery_status(d[4]),
                attempts=int(d[5]),
                last_error=d[6],
                delivered_at=out_or_none(d[7]),
            )
            for d in deliveries
        ),
    )


async def _deliveries_of(conn: Any, alert_ids: Sequence[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    if alert_ids:
        for row in await conn.fetch(_DELIVERIES_SELECT, list(alert_ids)):
            found.setdefault(row[0], []).append(row)
    return found


def _silence_from_row(row: Any) -> Silence:
    origin = row[8]
    if origin not in get_args(SilenceOrigin):
        raise ValueError(f"unknown silence origin {origin!r}")
    return Silence(
        id=row[0],
        matchers=json.loads(row[1]),
        starts_at=out(row[2]),
        ends_at=out(row[3]),
        creator=row[4],
        comment=row[5],
        created_at=out(row[6]),
        expired_at=out_or_none(row[7]),
        origin=cast(SilenceOrigin, origin),
    )


class PgAlerts(PgBase):
    """Alert listing, silences and group states of `PostgresStore`."""

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
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("rule", rule), ("state", state), ("source", source)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        if since is not None:
            params.append(utc(since))
            where.append(f"updated_at >= ${len(params)}")
        if before is not None:
            created, alert_id = decode_cursor(before)
            params.extend((decode_time(created), alert_id))
            where.append(f"(created_at, id) < (${len(params) - 1}, ${len(params)})")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        params.append(limit + 1)
        sql = f"{_ALERT_SELECT}{clause} ORDER BY created_at DESC, id DESC LIMIT ${len(params)}"
        async with self._tx("list alerts", snapshot=True) as conn:
            rows = list(await conn.fetch(sql, *params))
            page, more = rows[:limit], len(rows) > limit
            deliveries = await _deliveries_of(conn, [row[0] for row in page])
        alerts = [_stored_alert(row, deliveries.get(row[0], ())) for row in page]
        last = page[-1] if more else None
        cursor = None if last is None else encode_cursor(encode_time(out(last[1])), last[0])
        return AlertPage(alerts=alerts, next_cursor=cursor)

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        async with self._tx("read an alert", snapshot=True) as conn:
            row = await conn.fetchrow(f"{_ALERT_SELECT} WHERE id = $1", alert_id)
            deliveries = await _deliveries_of(conn, [alert_id]) if row is not None else {}
        return None if row is None else _stored_alert(row, deliveries.get(alert_id, ()))

    # --- silences -----------------------------------------------------------------

    async def add_silence(self, silence: Silence) -> bool:
        s = silence
        params = (
            s.id,
            compact_json(dict(sorted(s.matchers.items()))),
            utc(s.starts_at),
            utc(s.ends_at),
            s.creator,
            s.comment,
            utc(s.created_at),
            utc_or_none(s.expired_at),
            s.origin,
        )
        async with self._tx("add a silence") as conn:
            return row_count(await conn.execute(_SILENCE_INSERT, *params)) > 0

    async def get_silence(self, silence_id: str) -> Silence | None:
        async with self._tx("read a silence") as conn:
            row = await conn.fetchrow(f"{_SILENCE_SELECT} WHERE id = $1", silence_id)
        return None if row is None else _silence_from_row(row)

    async def list_silences(self, *, now: datetime, include_expired: bool = False) -> list[Silence]:
        at = utc(now)
        async with self._tx("list silences") as conn:
            if include_expired:
                rows = await conn.fetch(f"{_SILENCE_SELECT} ORDER BY starts_at, id")
            else:
                rows = await conn.fetch(_LIVE_SILENCES, at)
        return [_silence_from_row(row) for row in rows]

    async def expire_silence(self, silence_id: str, *, now: datetime) -> bool:
        at = utc(now)
        async with self._tx("expire a silence") as conn:
            return row_count(await conn.execute(_EXPIRE_SILENCE, at, silence_id)) > 0

    # --- group states -------------------------------------------------------------

    async def load_group_states(self, source: str) -> dict[tuple[str, str], GroupState]:
        async with self._tx("load group states") as conn:
            rows = await conn.fetch(_GROUP_SELECT, source)
        states = (group_from_row(row, read_time=out) for row in rows)
        return {(s.rule, s.group_key): s for s in states}
