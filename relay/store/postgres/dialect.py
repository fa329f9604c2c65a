"""The PostgreSQL dialect of the store, and its sessions: `$n` placeholders,
`timestamptz` timestamps, id lists bound as one `text[]`, and the statements only
PostgreSQL runs this way.

Invariants:
- Bulk writes are one statement each (`unnest` of one array per column), so a cycle
  costs a few round trips whatever it carries, and their counts come from the server:
  new alerts are named by `INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`, which
  stays right when another replica inserts the same alert at the same moment.
- A claim locks the rows it takes (`FOR UPDATE SKIP LOCKED`) and leases them in the same
  statement, so concurrent claimers in any number of replicas skip each other's rows
  rather than wait for them, and a row whose lease another claimer committed meanwhile
  is re-checked (no longer due) before it is taken.
- Text cannot hold NUL in PostgreSQL; a sink's error message might, so it is replaced.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

from relay.store import sql
from relay.store.backend import Dialect, Params, Row, Session, aware_utc

_ALERT_INSERT = (
    f"INSERT INTO alerts ({sql.column_list(sql.ALERT_COLUMNS)}) "
    "SELECT * FROM unnest(:id::text[], :source::text[], :rule::text[], :state::text[], "
    ":windowed::boolean[], :created_at::timestamptz[], :updated_at::timestamptz[], "
    ":body::text[]) ON CONFLICT (id) DO NOTHING RETURNING id"
)
# Only windowed rows follow their group; the stored row decides which an alert is.
_ALERT_UPDATE = (
    "UPDATE alerts SET state = u.state, updated_at = u.updated_at, body = u.body "
    "FROM unnest(:id::text[], :state::text[], :updated_at::timestamptz[], :body::text[]) "
    "AS u(id, state, updated_at, body) WHERE alerts.id = u.id AND alerts.windowed"
)
# A per-execution alert raised again is still live: touching it keeps prune from
# forgetting it (which would let it fire anew). Returns the ids of those alerts.
_ALERT_TOUCH = (
    "UPDATE alerts SET updated_at = u.updated_at "
    "FROM unnest(:id::text[], :updated_at::timestamptz[]) AS u(id, updated_at) "
    "WHERE alerts.id = u.id AND NOT alerts.windowed RETURNING alerts.id"
)
# Pending, due at once, in the order given; a known (id, sink) is left alone.
_OUTBOX_INSERT = (
    "INSERT INTO outbox (id, sink, alert_id, kind, status, enqueued_at, next_attempt_at, "
    "group_key, body) SELECT id, sink, alert_id, kind, 'pending', at, due, group_key, body "
    "FROM unnest(:id::text[], :sink::text[], :alert_id::text[], :kind::text[], "
    ":created_at::timestamptz[], :next_attempt_at::timestamptz[], :group_key::text[], "
    ":body::text[]) WITH ORDINALITY AS n(id, sink, alert_id, kind, at, due, group_key, body, "
    "ord) ORDER BY ord ON CONFLICT (id, sink) DO NOTHING"
)


def _claiming(select: str) -> str:
    """Lease the rows `select` picks, skipping those another claimer has locked."""
    return (
        f"WITH due AS ({select} FOR UPDATE OF outbox SKIP LOCKED) "
        "UPDATE outbox SET attempts = outbox.attempts + 1, next_attempt_at = :lease_end, "
        "claimed = TRUE FROM due "
        "WHERE outbox.seq = due.seq RETURNING due.next_attempt_at, outbox.seq, "
        "outbox.attempts - 1 AS attempts, outbox.enqueued_at, outbox.last_error, "
        "outbox.group_key, outbox.message_id, outbox.body"
    )


_CLAIM = {
    grouped: _claiming(sql.DUE_SELECT.format(grouped=sql.grouped_filter(grouped)))
    for grouped in (None, True, False)
}
_CLAIM_GROUPS = _claiming(sql.GROUP_DUE_SELECT.format(keys="group_key = ANY(:keys::text[])"))
_CLAIM_MESSAGES = _claiming(
    sql.MESSAGE_REST_SELECT.format(messages="message_id = ANY(:messages::text[])")
)


def row_count(status: str) -> int:
    """Rows a command changed, from its status (`UPDATE 3`, `DELETE 0`, `INSERT 0 2`)."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


def _columns(rows: Sequence[Params], names: Sequence[str]) -> Params:
    """One array per column, for `unnest`."""
    return {name: [row[name] for row in rows] for name in names}


class PgDialect(Dialect):
    numbered_placeholders: ClassVar[bool] = True
    ids_per_statement: ClassVar[int | None] = None
    row_lock: ClassVar[str] = " FOR UPDATE"

    def encode_time(self, value: datetime) -> datetime:
        return aware_utc(value)

    def decode_time(self, value: Any) -> datetime:
        return cast(datetime, value).astimezone(UTC)

    def any_of(self, column: str, *, marker: str, ids: Sequence[str]) -> tuple[str, Params]:
        return f"{column} = ANY(:{marker}::text[])", {marker: list(ids)}

    def epoch_us(self, column: str) -> str:
        # `extract` is numeric (exact) since PostgreSQL 14; rounding absorbs a double.
        return f"(extract(epoch FROM {column}) * 1000000)::bigint"

    def clean_text(self, text: str) -> str:
        return text.replace("\x00", "\ufffd")


POSTGRES = PgDialect()


class PgSession(Session):
    """A transaction on one pooled asyncpg connection."""

    def __init__(self, conn: Any) -> None:
        super().__init__(POSTGRES)
        self._conn = conn

    async def _fetch(self, query: str, args: Sequence[Any]) -> list[Row]:
        return list(await self._conn.fetch(query, *args))

    async def _execute(self, query: str, args: Sequence[Any]) -> int:
        return row_count(await self._conn.execute(query, *args))

    async def _execute_many(self, query: str, args: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(query, args)

    async def store_alerts(self, rows: Sequence[Params]) -> tuple[frozenset[str], frozenset[str]]:
        inserted = await self.fetch(_ALERT_INSERT, **_columns(rows, sql.ALERT_COLUMNS))
        new = frozenset(str(row["id"]) for row in inserted)
        rest = [row for row in rows if row["id"] not in new]
        if not rest:
            return new, frozenset()
        await self.execute(_ALERT_UPDATE, **_columns(rest, ("id", "state", "updated_at", "body")))
        touched = await self.fetch(_ALERT_TOUCH, **_columns(rest, ("id", "updated_at")))
        return new, frozenset(str(row["id"]) for row in touched)

    async def enqueue(self, rows: Sequence[Params]) -> int:
        return await self.execute(_OUTBOX_INSERT, **_columns(rows, sql.OUTBOX_COLUMNS))

    async def claim(
        self, *, sink: str, now: Any, lease_end: Any, limit: int, grouped: bool | None = None
    ) -> list[Row]:
        return await self.fetch(
            _CLAIM[grouped], sink=sink, now=now, limit=limit, lease_end=lease_end
        )

    async def claim_groups(
        self, *, sink: str, now: Any, lease_end: Any, keys: Sequence[str], limit: int
    ) -> list[Row]:
        return await self.fetch(
            _CLAIM_GROUPS, sink=sink, now=now, limit=limit, lease_end=lease_end, keys=list(keys)
        )

    async def claim_messages(
        self, *, sink: str, lease_end: Any, message_ids: Sequence[str], limit: int
    ) -> list[Row]:
        return await self.fetch(
            _CLAIM_MESSAGES,
            sink=sink,
            limit=limit,
            lease_end=lease_end,
            messages=list(message_ids),
        )
