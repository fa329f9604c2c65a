"""The state store contract: what the engine persists between cycles, whatever the backend.

Invariants every implementation keeps:
- All methods are coroutines and own their transactions; a caller never sees a
  half-applied cycle. `commit_cycle` is ONE transaction: states, transitions, the
  source cursor, alerts, group states and the outbox rows of the notifications are
  stored together or not at all, so a crash (even `kill -9`) can neither lose an alert
  whose state change was stored nor leave a notification without its alert.
- A transition is stored at most once per `Transition.key` (a unique constraint), so a
  replayed cycle, a restart or a second replica can never store it twice.
- A per-execution alert is stored once per id and never overwritten; a windowed alert
  (no `execution`) is updated in place as its group changes.
- A grouped notification (`Notification.group`) is due when its group's message is
  (`relay.domain.grouping.group_due_at`, decided in the enqueueing transaction); once
  a group message is attempted its members are fixed (`stamp_messages`).
- The outbox holds one row per (notification id, sink), ever: enqueueing it again is a
  no-op, so a replayed cycle cannot send a notification twice. Rows go pending ->
  delivered, or pending -> dead -> pending (replayed) | purged. A claim leases a row:
  until the lease ends (or the claimer marks it), no other claimer gets it.
- Datetimes go in and come out timezone-aware UTC, exact to the microsecond.
- Execution inputs are never persisted: they can hold personal data and secrets. A
  transition keeps a snapshot of its execution without `detail.input` and without each
  event's `input`; outputs stay because they carry the error messages alerts quote.
- Running states are never pruned, whatever their age; nor are alerts with a
  notification still pending or dead, nor windowed alerts still firing, nor pending or
  dead outbox rows.

Nothing here is specific to one database: no SQL, no rowids, no file paths; the records
it takes and gives are in `relay.store.records`. Both implementations,
`relay.store.sqlite.SqliteStore` (which serialises writers) and
`relay.store.postgres.PostgresStore` (several replicas on one database, with row
locks), are the shared `relay.store.sql_store.SqlStore` on their own dialect.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self

import relay.store.records as records
from relay.domain.alerts import Alert
from relay.domain.models import Execution
from relay.domain.state import SourceCursor, StateMarkers, TrackedExecution
from relay.vocab import AlertState

if TYPE_CHECKING:
    from relay.domain.silences import Silence
    from relay.domain.windows import GroupState

__all__ = ["Store", "execution_snapshot"]


def execution_snapshot(execution: Execution) -> dict[str, Any]:
    """The execution as API JSON, minus every input (see the module invariants)."""
    snapshot = execution.model_dump(mode="json", by_alias=True)
    detail = snapshot.get("detail")
    if isinstance(detail, dict):
        detail.pop("input", None)
        for event in detail.get("events") or ():
            if isinstance(event, dict):
                event.pop("input", None)
    return snapshot


class Store(Protocol):
    """Durable state of the relay. Implementations: `SqliteStore` (one replica) and
    `PostgresStore` (several).

    Usage: `await store.open()` once (creates or migrates the schema), then any method,
    then `await store.close()`; or `async with store:`. Every failure of the backend
    raises `relay.errors.StoreError` with a message that says what to do.
    """

    async def open(self) -> None:
        """Connect, then create or migrate the schema. Idempotent."""
        ...

    async def close(self) -> None:
        """Release the connection. Idempotent; the store can be opened again."""
        ...

    async def ping(self) -> None:
        """Raise `StoreError` unless the store is open and answers."""
        ...

    async def writes_refused(self) -> str | None:
        """None while the store takes writes; else why it refused the last one (disk
        full, read-only), after trying a one-row write again. Never raises."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get_cursor(self, source: str) -> SourceCursor | None:
        """The cursor of `source`, or None before its first committed cycle."""
        ...

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        """The stored states among `ids`, by id; unknown ids are absent from the result."""
        ...

    async def load_markers(self, source: str, ids: Collection[str]) -> dict[str, StateMarkers]:
        """The change markers of the stored states among `ids`, by id: what a cycle
        needs to skip known, unchanged history without loading whole states."""
        ...

    async def running_states(self, source: str) -> list[TrackedExecution]:
        """States with status "running", least recently seen first, then by id."""
        ...

    async def ended_since(self, source: str, since: datetime) -> list[TrackedExecution]:
        """States that are not running and ended at or after `since`, oldest end first
        (then by id). What windowed rules count; vanished ones are included when their
        end is known, for the rules to judge."""
        ...

    async def commit_cycle(self, result: records.CycleResult) -> records.CommitOutcome:
        """In ONE transaction: upsert states, insert new transitions (known keys are
        ignored), store alerts, enqueue notifications, replace group states, upsert the
        cursor (see `CycleResult` for what is kept and what is ignored).

        PostgreSQL: `INSERT INTO alerts ... ON CONFLICT (id) DO NOTHING RETURNING id`
        names the new alerts (windowed ones `DO UPDATE`), and the outbox insert is
        `ON CONFLICT (id, sink) DO NOTHING`; one replica polls a source at a time."""
        ...

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[records.StoredTransition]:
        """Up to `limit` transitions, newest `observed_at` first."""
        ...

    async def transition_count(self, *, source: str | None = None) -> int: ...

    async def state_count(self, *, source: str | None = None) -> int: ...

    # --- alerts -------------------------------------------------------------------

    async def list_alerts(
        self,
        *,
        rule: str | None = None,
        state: AlertState | None = None,
        source: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> records.AlertPage:
        """Alerts newest first (by `created_at`, then id), filtered; `since` keeps those
        created or changed at or after it. `before` is the `next_cursor` of the previous
        page (opaque; `ValueError` when malformed). Keyset pagination: a page never
        repeats or skips an alert because new ones arrived meanwhile."""
        ...

    async def get_alert(self, alert_id: str) -> records.StoredAlert | None: ...

    async def acknowledge_alert(
        self, alert_id: str, *, by: str, at: datetime, comment: str = ""
    ) -> bool:
        """Mark an alert acknowledged (`relay.domain.acks`): True when this call did;
        False when the alert is unknown or was already acknowledged (the first
        acknowledgement stays). `StoredAlert.acknowledgement` reads it back."""
        ...

    async def acknowledged_among(self, alert_ids: Collection[str]) -> set[str]:
        """Those of `alert_ids` that are acknowledged (what the reminder path skips)."""
        ...

    async def load_alerts(self, alert_ids: Collection[str]) -> dict[str, Alert]:
        """The stored alerts among `alert_ids`, by id (unknown ids are left out): what
        the planner needs of a windowed alert's earlier version (what its firing muted)."""
        ...

    # --- silences (runtime ones; config silences are never stored) ----------------

    async def add_silence(self, silence: Silence) -> bool:
        """Store a silence; False (and nothing changes) when its id is already stored."""
        ...

    async def get_silence(self, silence_id: str) -> Silence | None: ...

    async def list_silences(self, *, now: datetime, include_expired: bool = False) -> list[Silence]:
        """Silences by `starts_at`, then id. Without `include_expired`, only those not
        expired by hand and not yet ended at `now` (pending ones included)."""
        ...

    async def expire_silence(self, silence_id: str, *, now: datetime) -> bool:
        """End a silence now (`expired_at = now`); False when it is unknown or already
        expired or ended. What it silenced is not replayed."""
        ...

    # --- windowed rules -----------------------------------------------------------

    async def load_group_states(self, source: str) -> dict[tuple[str, str], GroupState]:
        """Every stored group state of `source`, by (rule, group_key)."""
        ...

    # --- outbox -------------------------------------------------------------------

    async def claim_due(
        self,
        sink: str,
        *,
        now: datetime,
        limit: int,
        lease_s: float,
        grouped: bool | None = None,
    ) -> list[records.OutboxItem]:
        """Up to `limit` pending notifications of `sink` due at `now`, soonest first, in
        enqueue order among equals, each leased for `lease_s`: its attempts grow by one
        and it is not due again before `now + lease_s` unless marked for retry sooner.
        Two claimers (tasks, processes, replicas) never get the same row while a lease
        runs; a claimer that dies lets its lease run out and the row comes back.
        A claim that takes some of a route group's due notifications takes the rest of
        them too (up to several messages' worth), beyond `limit`, so that the group
        goes out as one message; one that takes a member of a stamped message
        (`stamp_messages`) takes its other pending members too, due or not, unless
        another claimer holds them, so that an attempted message is retried whole.
        `grouped`: claim route groups' notifications only (True, when only a group's
        message is ready), ungrouped ones only (False), or any (None). PostgreSQL
        leases for at most 20 s and renews the lease while this store is open, up to
        `now + lease_s` (`relay.store.postgres.claims`), so what a dead replica claimed
        comes back within 20 s.

        SQLite: the select and the update run in one `BEGIN IMMEDIATE` transaction, so
        claimers queue on the write lock. PostgreSQL, where claimers skip each other's
        rows instead of waiting for them:

            UPDATE outbox SET next_attempt_at = $now + $lease, attempts = attempts + 1
            FROM (SELECT seq FROM outbox
                  WHERE sink = $sink AND status = 'pending' AND next_attempt_at <= $now
                  ORDER BY next_attempt_at, seq LIMIT $limit
                  FOR UPDATE SKIP LOCKED) AS due
            WHERE outbox.seq = due.seq
            RETURNING outbox.attempts - 1, outbox.enqueued_at, outbox.last_error, ...
        """
        ...

    async def release_own_leases(self, *, now: datetime) -> int:
        """Make due at `now` every row a claim leased and no settle cleared, one attempt
        fewer (a crash is no failed attempt); returns how many. Only the daemon calls it,
        at start: on SQLite no one else can hold those leases (one daemon per file).
        PostgreSQL returns 0: another replica may hold them, and they are short anyway.
        Retries scheduled by a settle (backoff, Retry-After) stay as they are."""
        ...

    async def stamp_messages(
        self, sink: str, messages: Mapping[str, Collection[str]], *, now: datetime
    ) -> int:
        """Fix the members of group messages before their first attempt: each pending
        notification among `messages[message_id]` not yet in a message is now in that
        one, first attempted at `now`. From then on it is claimed with its message's
        other members and never joins another (`OutboxItem.message_id`); a grouped
        notification enqueued later joins the group's next message. Returns how many."""
        ...

    async def mark_delivered(self, sink: str, ids: Collection[str], *, now: datetime) -> int:
        """Mark notifications delivered (final); returns how many changed. A dead letter
        that a slow attempt delivered after all counts as delivered."""
        ...

    async def mark_silenced(
        self, sink: str, ids: Collection[str], *, reason: str, now: datetime
    ) -> int:
        """Settle pending notifications without sending them (a silence matched when
        they fell due); kept, like delivered ones, until pruned. Returns how many."""
        ...

    async def mark_retry(
        self, sink: str, notification_id: str, *, next_attempt_at: datetime, error: str
    ) -> bool:
        """Keep a pending notification pending, due at `next_attempt_at`, with `error`
        as its last error. False when it is not pending (delivered, dead or unknown)."""
        ...

    async def mark_dead(
        self, sink: str, notification_id: str, *, reason: str, now: datetime
    ) -> bool:
        """Give up on a pending notification: it becomes a dead letter. False when it is
        not pending."""
        ...

    async def dead_letters(
        self, *, sink: str | Collection[str] | None = None, limit: int = 100
    ) -> list[records.DeadLetter]:
        """Dead letters (of every sink, of `sink`, or of any of several: the delivery
        targets of one sink), most recently dead first."""
        ...

    async def retry_dead(
        self,
        *,
        now: datetime,
        sink: str | Collection[str] | None = None,
        ids: Collection[str] | None = None,
    ) -> int:
        """Replay dead letters (all, or those with `ids`, of every sink or of `sink`, one
        name or several, as for `dead_letters`):
        pending again, due at `now`, attempts reset, enqueued at `now` (so `max_age`
        starts over). A route group's message keeps its id and members, except that a
        member whose message's other members were delivered leaves it for a new one
        (under the old `webhook-id` a receiver would drop it). Returns how many."""
        ...

    async def purge_dead(
        self, *, sink: str | Collection[str] | None = None, ids: Collection[str] | None = None
    ) -> int:
        """Delete dead letters (all, or those with `ids`, of every sink or of `sink`)."""
        ...

    async def retarget(self, old: str, new: Sequence[str]) -> int:
        """Move the pending and dead rows of target `old` to each of `new` (a reload
        renamed a sink's targets): the same notification, status, attempts and due time;
        a row a target already holds for that notification stays as it is. Returns the
        rows moved (counted once whatever `new` holds)."""
        ...

    async def outbox_counts(self) -> dict[str, records.OutboxCounts]:
        """(pending, dead) per sink that has any; leased rows count as pending."""
        ...

    async def next_due_at(self, sink: str, *, grouped: bool | None = None) -> datetime | None:
        """When the next pending notification of `sink` is due (maybe already past, or
        the end of a lease); None when nothing is pending. `grouped`: among those of a
        route group only (True) or ungrouped ones only (False)."""
        ...

    # --- statistics ---------------------------------------------------------------

    async def execution_stats(
        self, *, now: datetime, bucket_s: int, buckets: int
    ) -> records.ExecutionStats:
        """What ended within the `buckets` buckets of `bucket_s` seconds up to `now`:
        executions, failures and credits per (source, responder, bucket), and a histogram
        of durations per (source, responder). One statement (`relay.store.sql_stats`),
        answered from the `executions_stats` index."""
        ...

    # --- housekeeping -------------------------------------------------------------

    async def try_lead(self, source: str) -> bool:
        """Whether this process is (or just became) the one that polls `source`. Several
        replicas share a PostgreSQL store and only the holder of a source's lease polls
        it, the lease passing on within seconds when its holder dies; a SQLite store
        serves one replica, which always leads. Once asked, `commit_cycle` of that
        source fails with `StoreError` unless this store still leads it."""
        ...

    async def get_message_ref(self, sink: str, alert_id: str) -> records.MessageRefRecord | None:
        """Where `sink` posted the first message about `alert_id`, if it said."""
        ...

    async def put_message_ref(
        self, sink: str, alert_id: str, ref: records.MessageRefRecord, *, now: datetime
    ) -> None:
        """Remember (or replace) where `sink` posted about `alert_id`; pruned with age."""
        ...

    async def prune(self, *, before: datetime) -> records.PruneResult:
        """Delete what is older than `before` and no longer needed: non-running states
        that ended (or were last seen) before it; transitions observed before it;
        delivered outbox rows delivered before it; alerts last changed before it with
        no notification pending or dead (windowed ones only once resolved); silences
        that ended before it; group states that never fired, unchanged since before it.
        Group states that fired are kept: their episode numbers keep alert ids unique."""
        ...
