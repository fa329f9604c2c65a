"""The `Store` on a SQL database, whatever the backend: executions, transitions,
cursors, the cycle commit, message references and pruning here; alerts, silences and
group states in `relay.store.sql_alerts`; the outbox in `relay.store.sql_outbox`.
A backend (`relay.store.sqlite`, `relay.store.postgres`) adds connections and
transactions, and its ways of bulk-inserting and claiming (`relay.store.backend`).

Invariants (besides those of `relay.store.base.Store`):
- `commit_cycle` is ONE write transaction, fenced first by the source's leadership
  (`_fence_cycle`, PostgreSQL's): states, transitions, alerts, outbox rows,
  group states and the cursor are committed together or not at all. A notification
  therefore never reaches the outbox without its alert and the state change that
  caused it.
- Every record is encoded before the transaction starts and decoded after it ends, so
  a transaction (and SQLite's write lock) covers the statements only.
- Within one cycle a per-execution alert keeps its first version (it fires once) and a
  windowed one its last (the latest state of its group).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from relay.domain.alerts import Alert
from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution
from relay.store import sql
from relay.store.backend import Params, Row, Session, distinct_ids
from relay.store.records import (
    CommitOutcome,
    CycleResult,
    MessageRefRecord,
    PruneResult,
    StoredTransition,
)
from relay.store.rows import (
    alert_params,
    cursor_from_row,
    cursor_params,
    group_params,
    message_ref_from_row,
    message_ref_params,
    outbox_params,
    state_from_row,
    state_params,
    transition_from_row,
    transition_params,
)
from relay.store.sql_alerts import SqlAlerts
from relay.store.sql_outbox import SqlOutbox
from relay.store.sql_stats import SqlStats

_UNCOUNTED = ""
_NONE_STORED: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset())
# Each prune, and the `PruneResult` field that counts what it deleted. Delivered rows go
# before alerts: an alert is kept while any of its notifications is pending or dead,
# and delivered ones no longer count.
_PRUNES = (
    (sql.PRUNE_STATES, "states_deleted"),
    (sql.PRUNE_TRANSITIONS, "transitions_deleted"),
    (sql.PRUNE_DELIVERED, "notifications_deleted"),
    (sql.PRUNE_ALERTS, "alerts_deleted"),
    (sql.PRUNE_SILENCES, "silences_deleted"),
    (sql.PRUNE_GROUPS, "group_states_deleted"),
    (sql.PRUNE_MESSAGE_REFS, _UNCOUNTED),
)


def alerts_to_store(result: CycleResult) -> list[Alert]:
    """The cycle's alerts, plus the alert of any notification the caller left out of
    `alerts`: the outbox never holds a notification whose alert is unknown."""
    alerts = list(result.alerts)
    listed = {a.id for a in alerts}
    alerts += [n.alert for n in result.notifications if n.alert.id not in listed]
    return alerts


def one_version_each(rows: Sequence[Params]) -> list[Params]:
    """One alert row per id: the first of a per-execution alert, the last of a windowed one."""
    batch: dict[str, Params] = {}
    for row in rows:
        if row["windowed"] or row["id"] not in batch:
            batch[row["id"]] = row
    return list(batch.values())


class SqlStore(SqlAlerts, SqlOutbox, SqlStats):
    """The `Store` methods a backend inherits (see the module docstring)."""

    # --- reads --------------------------------------------------------------------

    async def get_cursor(self, source: str) -> SourceCursor | None:
        async with self._reading("read the source cursor") as session:
            row = await session.fetch_one(sql.CURSOR_SELECT, source=source)
        return None if row is None else cursor_from_row(row, dialect=self.dialect)

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        rows = await self._by_id(
            sql.STATE_SELECT, source, ids, "load execution states", method="load_states"
        )
        states = (state_from_row(row, dialect=self.dialect) for row in rows)
        return {s.id: s for s in states}

    async def load_markers(self, source: str, ids: Collection[str]) -> dict[str, StateMarkers]:
        rows = await self._by_id(
            sql.MARKERS_SELECT, source, ids, "load execution markers", method="load_markers"
        )
        return {
            row["id"]: StateMarkers(
                status=row["status"],
                credits_used=float(row["credits_used"]),
                updated_at=self.dialect.decode_time(row["updated_at"]),
                is_purged=bool(row["is_purged"]),
            )
            for row in rows
        }

    async def _by_id(
        self, select: str, source: str, ids: Collection[str], action: str, *, method: str
    ) -> list[Row]:
        """The executions of `source` among `ids`, as `select` reads them."""
        wanted = distinct_ids(ids, method=method)
        found: list[Row] = []
        if not wanted:
            return found
        async with self._reading(action) as session:
            for chunk in self.dialect.id_chunks(wanted):
                condition, params = self.dialect.any_of("id", marker="ids", ids=chunk)
                statement = f"{select} WHERE source = :source AND {condition}"
                found += await session.fetch(statement, source=source, **params)
        return found

    async def running_states(self, source: str) -> list[TrackedExecution]:
        async with self._reading("list running executions") as session:
            rows = await session.fetch(sql.RUNNING_STATES, source=source)
        return [state_from_row(row, dialect=self.dialect) for row in rows]

    async def ended_since(self, source: str, since: datetime) -> list[TrackedExecution]:
        at = self.dialect.encode_time(since)
        async with self._reading("list ended executions") as session:
            rows = await session.fetch(sql.ENDED_STATES, source=source, since=at)
        return [state_from_row(row, dialect=self.dialect) for row in rows]

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[StoredTransition]:
        if limit <= 0:
            return []
        where = "" if source is None else " WHERE source = :source"
        params = {} if source is None else {"source": source}
        statement = f"{sql.TRANSITION_SELECT}{where} {sql.TRANSITIONS_NEWEST_FIRST}"
        async with self._reading("list transitions") as session:
            rows = await session.fetch(statement, limit=limit, **params)
        return [transition_from_row(row, dialect=self.dialect) for row in rows]

    async def transition_count(self, *, source: str | None = None) -> int:
        return await self._count("transitions", source)

    async def state_count(self, *, source: str | None = None) -> int:
        return await self._count("executions", source)

    # --- writes -------------------------------------------------------------------

    async def commit_cycle(self, result: CycleResult) -> CommitOutcome:
        dialect = self.dialect
        states = [state_params(s, dialect=dialect) for s in result.states]
        transitions = [transition_params(t, dialect=dialect) for t in result.transitions]
        cursor = cursor_params(result.cursor, dialect=dialect)
        outbox = [outbox_params(n, dialect=dialect) for n in result.notifications]
        alerts: list[Params] = []
        groups: list[Params] = []
        if (at := result.stored_at) is not None:
            alerts = one_version_each(
                [alert_params(a, at=at, dialect=dialect) for a in alerts_to_store(result)]
            )
            groups = [group_params(g, at=at, dialect=dialect) for g in result.group_states]
        async with self._writing("commit a poll cycle") as session:
            await self._fence_cycle(session, result.source)
            await session.execute_many(sql.STATE_UPSERT, states)
            await session.execute_many(sql.TRANSITION_INSERT, transitions)
            new_ids, fired_before = await session.store_alerts(alerts) if alerts else _NONE_STORED
            # A notification about a per-execution alert stored before this cycle was
            # (or will be) sent then: it is not enqueued again.
            kept = [
                (n, row)
                for n, row in zip(result.notifications, outbox, strict=True)
                if row["alert_id"] not in fired_before
            ]
            wanted = [row for _, row in kept]
            await self._schedule_groups(session, [n for n, _ in kept], wanted)
            enqueued = await session.enqueue(wanted) if wanted else 0
            await session.execute_many(sql.GROUP_UPSERT, groups)
            await session.execute(sql.CURSOR_UPSERT, **cursor)
        return CommitOutcome(new_alert_ids=new_ids, enqueued=enqueued)

    async def _fence_cycle(self, session: Session, source: str) -> None:
        """First in a cycle's commit: refuse it (`StoreError`) when this replica no
        longer leads `source`. A store that one replica owns always leads."""

    async def get_message_ref(self, sink: str, alert_id: str) -> MessageRefRecord | None:
        async with self._reading("read a message reference") as session:
            row = await session.fetch_one(sql.MESSAGE_REF_SELECT, sink=sink, alert_id=alert_id)
        return None if row is None else message_ref_from_row(row)

    async def put_message_ref(
        self, sink: str, alert_id: str, ref: MessageRefRecord, *, now: datetime
    ) -> None:
        params = message_ref_params(ref, sink=sink, alert_id=alert_id, at=now, dialect=self.dialect)
        async with self._writing("remember a message reference") as session:
            await session.execute(sql.MESSAGE_REF_UPSERT, **params)

    async def prune(self, *, before: datetime) -> PruneResult:
        cutoff = self.dialect.encode_time(before)
        deleted: dict[str, int] = {}
        async with self._writing("prune old rows") as session:
            for statement, counted_as in _PRUNES:
                deleted[counted_as] = await session.execute(statement, before=cutoff)
        del deleted[_UNCOUNTED]
        return PruneResult(**deleted)
