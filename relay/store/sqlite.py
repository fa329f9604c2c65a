"""The SQLite store: one file, one replica.

Invariants (those of the connection are in `_sqlite_base`):
- `commit_cycle` is one `BEGIN IMMEDIATE` transaction: states, transitions, alerts,
  outbox rows, group states and the cursor are committed together, fsynced, or not at
  all. A notification therefore never reaches the outbox without its alert and the
  state change that caused it, and a crash between the two cannot happen.
- Encoding (JSON snapshots, alerts, notifications) happens before the lock is taken,
  decoding after it is released, so the write lock covers the statements only.
- The store is assembled from parts, one per group of tables: `SqliteAlerts` (listing),
  `SqliteOutbox` (delivery), `SqliteRules` (silences, group states); this module keeps
  executions, transitions, cursors, the cycle commit and pruning. How records map to
  columns lives in `_sqlite_rows` and in each part.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution
from relay.store._row_decode import alerts_to_store
from relay.store._sqlite_alerts import (
    PRUNE_ALERTS,
    PRUNE_DELIVERED,
    SqliteAlerts,
    alert_row,
    enqueue,
    outbox_row,
    store_alerts,
)
from relay.store._sqlite_base import source_filter
from relay.store._sqlite_outbox import SqliteOutbox
from relay.store._sqlite_rows import (
    STATE_COLUMNS,
    TRANSITION_COLUMNS,
    chunks,
    cursor_from_row,
    cursor_to_row,
    decode_time,
    encode_time,
    marks,
    state_from_row,
    state_to_row,
    transition_from_row,
    transition_to_row,
)
from relay.store._sqlite_rules import (
    GROUP_UPSERT,
    PRUNE_GROUPS,
    PRUNE_SILENCES,
    SqliteRules,
    group_to_row,
)
from relay.store.records import (
    CommitOutcome,
    CycleResult,
    MessageRefRecord,
    PruneResult,
    StoredTransition,
)

__all__ = ["SqliteStore"]

_STATE_SELECT = f"SELECT {', '.join(STATE_COLUMNS)} FROM executions"
_STATE_UPSERT = (
    f"INSERT INTO executions ({', '.join(STATE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in STATE_COLUMNS)}) "
    "ON CONFLICT (source, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[2:])
)

_TRANSITION_SELECT = f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM transitions"
# A known key is ignored, never updated: the first observation of a change is the one
# that was (or will be) alerted on.
_TRANSITION_INSERT = (
    f"INSERT INTO transitions ({', '.join(TRANSITION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TRANSITION_COLUMNS)}) "
    "ON CONFLICT (key) DO NOTHING"
)

# The expression and the status test match the partial index `executions_prunable`
# word for word, so SQLite can use it.
_PRUNE_STATES = (
    "DELETE FROM executions WHERE status <> 'running' AND coalesce(ended_at, last_seen_at) < ?"
)
_PRUNE_TRANSITIONS = "DELETE FROM transitions WHERE observed_at < ?"
_PRUNE_MESSAGE_REFS = "DELETE FROM message_refs WHERE created_at < ?"
_RUNNING_SELECT = (
    f"{_STATE_SELECT} WHERE source = ? AND status = 'running' ORDER BY last_seen_at, id"
)
_ENDED_SELECT = (
    f"{_STATE_SELECT} WHERE source = ? AND ended_at >= ? AND status <> 'running' "
    "ORDER BY ended_at, id"
)

_CURSOR_UPSERT = (
    "INSERT INTO source_cursors (source, first_poll_done, last_success_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET "
    "first_poll_done = excluded.first_poll_done, last_success_at = excluded.last_success_at"
)


class SqliteStore(SqliteAlerts, SqliteOutbox, SqliteRules):
    """The `Store` on a SQLite file (see the module docstrings for its guarantees)."""

    # --- reads --------------------------------------------------------------------

    async def get_cursor(self, source: str) -> SourceCursor | None:
        async with self._reading("read the source cursor") as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT source, first_poll_done, last_success_at FROM source_cursors "
                    "WHERE source = ?",
                    (source,),
                )
            )
        if not rows:
            return None
        return cursor_from_row(rows[0])

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        if isinstance(ids, str):
            # A lone id is a Collection[str] too, of its characters: refuse the mistake.
            raise TypeError("load_states takes a collection of ids, not one id")
        wanted = list(dict.fromkeys(ids))
        found: dict[str, TrackedExecution] = {}
        async with self._reading("load execution states") as conn:
            for chunk in chunks(wanted):
                rows = await conn.execute_fetchall(
                    f"{_STATE_SELECT} WHERE source = ? AND id IN ({marks(len(chunk))})",
                    (source, *chunk),
                )
                for row in rows:
                    state = state_from_row(row)
                    found[state.id] = state
        return found

    async def load_markers(self, source: str, ids: Collection[str]) -> dict[str, StateMarkers]:
        if isinstance(ids, str):
            raise TypeError("load_markers takes a collection of ids, not one id")
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StateMarkers] = {}
        async with self._reading("load execution markers") as conn:
            for chunk in chunks(wanted):
                rows = await conn.execute_fetchall(
                    "SELECT id, status, credits_used, updated_at, is_purged FROM executions "
                    f"WHERE source = ? AND id IN ({marks(len(chunk))})",
                    (source, *chunk),
                )
                for row in rows:
                    found[row[0]] = StateMarkers(
                        status=row[1],
                        credits_used=float(row[2]),
                        updated_at=decode_time(row[3]),
                        is_purged=bool(row[4]),
                    )
        return found

    async def running_states(self, source: str) -> list[TrackedExecution]:
        async with self._reading("list running executions") as conn:
            rows = await conn.execute_fetchall(_RUNNING_SELECT, (source,))
        return [state_from_row(row) for row in rows]

    async def ended_since(self, source: str, since: datetime) -> list[TrackedExecution]:
        at = encode_time(since)
        async with self._reading("list ended executions") as conn:
            rows = await conn.execute_fetchall(_ENDED_SELECT, (source, at))
        return [state_from_row(row) for row in rows]

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[StoredTransition]:
        if limit <= 0:
            return []
        where, params = source_filter(source)
        async with self._reading("list transitions") as conn:
            rows = await conn.execute_fetchall(
                f"{_TRANSITION_SELECT}{where} ORDER BY observed_at DESC, seq DESC LIMIT ?",
                (*params, limit),
            )
        return [transition_from_row(row) for row in rows]

    async def transition_count(self, *, source: str | None = None) -> int:
        return await self._count("transitions", source)

    async def state_count(self, *, source: str | None = None) -> int:
        return await self._count("executions", source)

    # --- writes -------------------------------------------------------------------

    async def commit_cycle(self, result: CycleResult) -> CommitOutcome:
        states = [state_to_row(s) for s in result.states]
        transitions = [transition_to_row(t) for t in result.transitions]
        cursor_row = cursor_to_row(result.cursor)
        at = result.stored_at
        alerts = alerts_to_store(result)
        alert_rows = [alert_row(a, at=at) for a in alerts] if at is not None else []
        outbox_rows = [outbox_row(n) for n in result.notifications]
        groups = [group_to_row(g, at=at) for g in result.group_states] if at is not None else []
        async with self._writing("commit a poll cycle") as conn:
            if states:
                await conn.executemany(_STATE_UPSERT, states)
            if transitions:
                await conn.executemany(_TRANSITION_INSERT, transitions)
            new_ids, fired_before = await store_alerts(conn, alert_rows)
            enqueued = await enqueue(conn, outbox_rows, fired_before=fired_before)
            if groups:
                await conn.executemany(GROUP_UPSERT, groups)
            await conn.execute(_CURSOR_UPSERT, cursor_row)
        return CommitOutcome(new_alert_ids=new_ids, enqueued=enqueued)

    async def try_lead(self, source: str) -> bool:
        # One replica per SQLite file (the Helm chart enforces it): it always leads.
        del source
        return True

    async def get_message_ref(self, sink: str, alert_id: str) -> MessageRefRecord | None:
        async with self._reading("read a message reference") as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT channel, ts, single FROM message_refs WHERE sink = ? AND alert_id = ?",
                    (sink, alert_id),
                )
            )
        if not rows:
            return None
        channel, ts, single = rows[0]
        return MessageRefRecord(channel=channel, ts=ts, single=bool(single))

    async def put_message_ref(
        self, sink: str, alert_id: str, ref: MessageRefRecord, *, now: datetime
    ) -> None:
        async with self._writing("remember a message reference") as conn:
            await conn.execute(
                "INSERT INTO message_refs (sink, alert_id, channel, ts, single, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sink, alert_id) DO UPDATE SET "
                "channel = excluded.channel, ts = excluded.ts, single = excluded.single",
                (sink, alert_id, ref.channel, ref.ts, int(ref.single), encode_time(now)),
            )

    async def prune(self, *, before: datetime) -> PruneResult:
        cutoff = encode_time(before)
        deleted: list[int] = []
        async with self._writing("prune old rows") as conn:
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
                async with conn.execute(statement, (cutoff,)) as cur:
                    deleted.append(max(cur.rowcount, 0))
        states, transitions, delivered, alerts, silences, groups, _refs = deleted
        return PruneResult(
            states_deleted=states,
            transitions_deleted=transitions,
            alerts_deleted=alerts,
            notifications_deleted=delivered,
            silences_deleted=silences,
            group_states_deleted=groups,
        )
