"""The PostgreSQL store: one database, any number of replicas.

    store = PostgresStore("postgresql://relay:secret@db:5432/relay", min_size=1, max_size=5)

It keeps the contract of `relay.store.base.Store` exactly as `SqliteStore` does (same
semantics, same return values; the two are tested alike). Where SQLite serialises
writers, PostgreSQL keeps the invariants with constraints and row locks:
- `commit_cycle` is ONE transaction: states, transitions, alerts, outbox rows, group
  states and the cursor commit together or not at all. New alerts are named by
  `INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`, transitions and outbox rows are
  deduplicated by their unique keys (`ON CONFLICT DO NOTHING`).
- `claim_due` leases with `UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)`, so
  claimers of several replicas never get the same row (see `_pg_outbox`).
- `try_lead` elects, per source, the one replica that polls it, with a session-level
  advisory lock held on a dedicated connection (see `_pg_base`).
- The schema is versioned in `schema_migrations` with PostgreSQL's own numbering (see
  `_pg_schema`); `open()` migrates it, replicas starting together included.

Connection settings beyond the URL's (`sslmode`, `connect_timeout`, `search_path`, ...)
go in the URL's query string, as libpq spells them; asyncpg passes unknown parameters
to the server as settings, so `?search_path=relay` selects a schema. Error messages
name the database without the URL's password.

The store is assembled from parts: `PgAlerts` (alerts, silences, group states),
`PgOutbox` (delivery) and `PgBase` (pool, transactions, errors, leadership); this module
keeps executions, transitions, cursors, the cycle commit, message references and pruning.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from relay.domain.state import (
    SourceCursor,
    StateMarkers,
    TrackedExecution,
    Transition,
    TransitionKind,
)
from relay.store._pg_alerts import (
    GROUP_UPSERT,
    PRUNE_ALERTS,
    PRUNE_DELIVERED,
    PRUNE_GROUPS,
    PRUNE_SILENCES,
    PgAlerts,
    alert_row,
    enqueue,
    group_to_row,
    outbox_row,
    store_alerts,
)
from relay.store._pg_base import id_list, out, out_or_none, row_count, utc, utc_or_none
from relay.store._pg_outbox import PgOutbox
from relay.store._row_decode import alerts_to_store, state_from_row
from relay.store._sqlite_rows import STATE_COLUMNS, TRANSITION_COLUMNS
from relay.store.base import Store, execution_snapshot
from relay.store.records import (
    CommitOutcome,
    CycleResult,
    MessageRefRecord,
    PruneResult,
    StoredTransition,
)

__all__ = ["PostgresStore"]


def _params(count: int, first: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


_STATE_SELECT = f"SELECT {', '.join(STATE_COLUMNS)} FROM executions"
_STATE_UPSERT = (
    f"INSERT INTO executions ({', '.join(STATE_COLUMNS)}) VALUES ({_params(len(STATE_COLUMNS))}) "
    "ON CONFLICT (source, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[2:])
)
_TRANSITION_SELECT = f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM transitions"
# A known key is ignored, never updated: the first observation of a change counts.
_TRANSITION_INSERT = (
    f"INSERT INTO transitions ({', '.join(TRANSITION_COLUMNS)}) "
    f"VALUES ({_params(len(TRANSITION_COLUMNS))}) ON CONFLICT (key) DO NOTHING"
)
_CURSOR_UPSERT = (
    "INSERT INTO source_cursors (source, first_poll_done, last_success_at) VALUES ($1, $2, $3) "
    "ON CONFLICT (source) DO UPDATE SET "
    "first_poll_done = excluded.first_poll_done, last_success_at = excluded.last_success_at"
)
_PRUNE_STATES = (
    "DELETE FROM executions WHERE status <> 'running' AND coalesce(ended_at, last_seen_at) < $1"
)
_PRUNE_TRANSITIONS = "DELETE FROM transitions WHERE observed_at < $1"
_PRUNE_MESSAGE_REFS = "DELETE FROM message_refs WHERE created_at < $1"
_RUNNING_SELECT = (
    f"{_STATE_SELECT} WHERE source = $1 AND status = 'running' ORDER BY last_seen_at, id"
)
_ENDED_SELECT = (
    f"{_STATE_SELECT} WHERE source = $1 AND ended_at >= $2 AND status <> 'running' "
    "ORDER BY ended_at, id"
)


def _state_to_row(state: TrackedExecution) -> tuple[Any, ...]:
    s = state
    return (
        s.source,
        s.id,
        s.status,
        s.credits_used,
        s.kind,
        s.responder_id,
        s.parent_id,
        s.agent_id,
        s.workflow_id,
        utc(s.created_at),
        utc(s.updated_at),
        utc(s.started_at),
        utc_or_none(s.ended_at),
        s.is_purged,
        utc(s.last_seen_at),
        json.dumps(sorted(s.reported_statuses)),
        s.origin_type,
        s.is_agentic,
    )


def _transition_to_row(transition: Transition) -> tuple[Any, ...]:
    t = transition
    return (
        t.key,
        t.source,
        t.execution_id,
        t.kind,
        t.from_status,
        t.to_status,
        t.credits_before,
        t.credits_after,
        utc(t.observed_at),
        t.alertable,
        json.dumps(execution_snapshot(t.execution), separators=(",", ":")),
    )


def _transition_from_row(row: Any) -> StoredTransition:
    return StoredTransition(
        key=row[0],
        source=row[1],
        execution_id=row[2],
        kind=cast(TransitionKind, row[3]),
        from_status=row[4],
        to_status=row[5],
        credits_before=float(row[6]),
        credits_after=float(row[7]),
        observed_at=out(row[8]),
        alertable=bool(row[9]),
        snapshot=json.loads(row[10]),
    )


class PostgresStore(PgAlerts, PgOutbox):
    """The `Store` on a PostgreSQL database (see the module docstrings)."""

    # --- reads --------------------------------------------------------------------

    async def get_cursor(self, source: str) -> SourceCursor | None:
        async with self._tx("read the source cursor") as conn:
            row = await conn.fetchrow(
                "SELECT source, first_poll_done, last_success_at FROM source_cursors "
                "WHERE source = $1",
                source,
            )
        if row is None:
            return None
        return SourceCursor(
            source=row[0], first_poll_done=bool(row[1]), last_success_at=out_or_none(row[2])
        )

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        wanted = id_list(ids, "load_states")
        if not wanted:
            return {}
        async with self._tx("load execution states") as conn:
            rows = await conn.fetch(
                f"{_STATE_SELECT} WHERE source = $1 AND id = ANY($2::text[])", source, wanted
            )
        states = (state_from_row(row, read_time=out) for row in rows)
        return {s.id: s for s in states}

    async def load_markers(self, source: str, ids: Collection[str]) -> dict[str, StateMarkers]:
        wanted = id_list(ids, "load_markers")
        if not wanted:
            return {}
        async with self._tx("load execution markers") as conn:
            rows = await conn.fetch(
                "SELECT id, status, credits_used, updated_at, is_purged FROM executions "
                "WHERE source = $1 AND id = ANY($2::text[])",
                source,
                wanted,
            )
        return {
            row[0]: StateMarkers(
                status=row[1],
                credits_used=float(row[2]),
                updated_at=out(row[3]),
                is_purged=bool(row[4]),
            )
            for row in rows
        }

    async def running_states(self, source: str) -> list[TrackedExecution]:
        async with self._tx("list running executions") as conn:
            rows = await conn.fetch(_RUNNING_SELECT, source)
        return [state_from_row(row, read_time=out) for row in rows]

    async def ended_since(self, source: str, since: datetime) -> list[TrackedExecution]:
        at = utc(since)
        async with self._tx("list ended executions") as conn:
            rows = await conn.fetch(_ENDED_SELECT, source, at)
        return [state_from_row(row, read_time=out) for row in rows]

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[StoredTransition]:
        if limit <= 0:
            return []
        order = "ORDER BY observed_at DESC, seq DESC"
        async with self._tx("list transitions") as conn:
            if source is None:
                rows = await conn.fetch(f"{_TRANSITION_SELECT} {order} LIMIT $1", limit)
            else:
                rows = await conn.fetch(
                    f"{_TRANSITION_SELECT} WHERE source = $1 {order} LIMIT $2", source, limit
                )
        return [_transition_from_row(row) for row in rows]

    async def transition_count(self, *, source: str | None = None) -> int:
        return await self._count("transitions", source)

    async def state_count(self, *, source: str | None = None) -> int:
        return await self._count("executions", source)

    # --- writes -------------------------------------------------------------------

    async def commit_cycle(self, result: CycleResult) -> CommitOutcome:
        # Everything is encoded before a connection is taken: a bad record (a naive
        # datetime) fails before anything is sent.
        states = [_state_to_row(s) for s in result.states]
        transitions = [_transition_to_row(t) for t in result.transitions]
        last = result.cursor.last_success_at
        cursor_row = (result.cursor.source, result.cursor.first_poll_done, utc_or_none(last))
        at = result.stored_at
        alerts = alerts_to_store(result)
        alert_rows = [alert_row(a, at=at) for a in alerts] if at is not None else []
        outbox_rows = [outbox_row(n) for n in result.notifications]
        groups = [group_to_row(g, at=at) for g in result.group_states] if at is not None else []
        async with self._tx("commit a poll cycle") as conn:
            if states:
                await conn.executemany(_STATE_UPSERT, states)
            if transitions:
                await conn.executemany(_TRANSITION_INSERT, transitions)
            new_ids, fired_before = await store_alerts(conn, alert_rows)
            enqueued = await enqueue(conn, outbox_rows, fired_before=fired_before)
            if groups:
                await conn.executemany(GROUP_UPSERT, groups)
            await conn.execute(_CURSOR_UPSERT, *cursor_row)
        return CommitOutcome(new_alert_ids=new_ids, enqueued=enqueued)

    async def get_message_ref(self, sink: str, alert_id: str) -> MessageRefRecord | None:
        async with self._tx("read a message reference") as conn:
            row = await conn.fetchrow(
                "SELECT channel, ts, single FROM message_refs WHERE sink = $1 AND alert_id = $2",
                sink,
                alert_id,
            )
        if row is None:
            return None
        return MessageRefRecord(channel=row[0], ts=row[1], single=bool(row[2]))

    async def put_message_ref(
        self, sink: str, alert_id: str, ref: MessageRefRecord, *, now: datetime
    ) -> None:
        at = utc(now)
        async with self._tx("remember a message reference") as conn:
            await conn.execute(
                "INSERT INTO message_refs (sink, alert_id, channel, ts, single, created_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sink, alert_id) DO UPDATE SET "
                "channel = excluded.channel, ts = excluded.ts, single = excluded.single",
                sink,
                alert_id,
                ref.channel,
                ref.ts,
                ref.single,
                at,
            )

    async def prune(self, *, before: datetime) -> PruneResult:
        cutoff = utc(before)
        deleted: list[int] = []
        async with self._tx("prune old rows") as conn:
            # Delivered rows go before alerts: an alert is kept while any of its
            # notifications is pending or dead, and delivered ones no longer count.
            for statement in (
                _PRUNE_STATES,
                _PRUNE_TRANSITIONS,
                PRUNE_DELIVERED,
                PRUNE_ALERTS,
                PRUNE_SILENCES,
                PRUNE_GROUPS,
                _PRUNE_MESSAGE_REFS,
            ):
                deleted.append(row_count(await conn.execute(statement, cutoff)))
        states, transitions, delivered, alerts, silences, groups, _refs = deleted
        return PruneResult(
            states_deleted=states,
            transitions_deleted=transitions,
            alerts_deleted=alerts,
            notifications_deleted=delivered,
            silences_deleted=silences,
            group_states_deleted=groups,
        )


if TYPE_CHECKING:

    def _conforms(store: PostgresStore) -> Store:
        # mypy checks here that `PostgresStore` keeps the whole `Store` protocol.
        return store
