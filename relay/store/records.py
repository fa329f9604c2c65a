"""The values the store takes and gives back, whatever the backend.

Invariants:
- Records are frozen; nothing here knows SQL, rowids or files.
- A `CycleResult` belongs to one source: every state, transition, alert, notification
  and group state it carries is of that source (checked when it is built).
- A cycle that carries alerts, notifications or group states has a time
  (`cursor.last_success_at`): the store dates what it keeps with it instead of reading
  a clock of its own.
- Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from relay.domain.acks import Acknowledgement
from relay.domain.alerts import Alert, Notification
from relay.domain.exec_stats import BucketCount
from relay.domain.models import Execution
from relay.domain.state import SourceCursor, TrackedExecution, Transition, TransitionKind

if TYPE_CHECKING:
    from relay.domain.windows import GroupState

DeliveryStatus = Literal["pending", "delivered", "dead", "silenced"]


@dataclass(frozen=True)
class CycleResult:
    """Everything one poll cycle of one source persists, in one transaction.

    `alerts` are inserted, except that a per-execution alert already stored is kept as
    it is (it fires once); a windowed alert (one without `execution`) is upserted, so
    its state, `ended_at` and `value` follow its group. `notifications` go to the outbox,
    pending and due at their `created_at`; one already there (same id and sink) is
    ignored, and so is a notification about a per-execution alert that was stored
    before this cycle. `group_states` replace the stored ones.
    """

    source: str
    states: Sequence[TrackedExecution]
    transitions: Sequence[Transition]
    cursor: SourceCursor
    alerts: Sequence[Alert] = ()
    notifications: Sequence[Notification] = ()
    group_states: Sequence[GroupState] = ()

    def __post_init__(self) -> None:
        # A cycle belongs to exactly one source; a stray record would be stored under
        # the wrong workspace and silently never match again.
        sources = {s.source for s in self.states} | {t.source for t in self.transitions}
        sources |= {a.source for a in self.alerts}
        sources |= {n.alert.source for n in self.notifications}
        sources |= {g.source for g in self.group_states}
        strays = sorted((sources | {self.cursor.source}) - {self.source})
        if strays:
            raise ValueError(f"cycle of source {self.source!r} carries records of {strays}")
        if self.stored_at is None and (self.alerts or self.notifications or self.group_states):
            raise ValueError(
                "a cycle that carries alerts, notifications or group states needs "
                "cursor.last_success_at: the store dates them with it"
            )

    @property
    def changes_nothing(self) -> bool:
        """Nothing but the cursor to write: no state, transition, alert or group."""
        return (
            not (self.states or self.transitions or self.alerts or self.notifications)
            and not self.group_states
        )

    @property
    def stored_at(self) -> datetime | None:
        """The cycle's time, which dates the alerts and group states it stores."""
        return self.cursor.last_success_at


@dataclass(frozen=True)
class CommitOutcome:
    """What `Store.commit_cycle` actually added.

    `new_alert_ids`: alerts stored for the first time by this commit (a windowed alert
    that was only updated is not among them). `enqueued`: outbox rows inserted
    (notifications already there, or about an alert that fired before, are not counted).
    """

    new_alert_ids: frozenset[str] = frozenset()
    enqueued: int = 0


@dataclass(frozen=True)
class StoredTransition:
    """A transition as read back from the store.

    `snapshot` is the execution as observed, in API JSON (camelCase), without inputs.
    """

    key: str
    source: str
    execution_id: str
    observed_at: datetime
    kind: TransitionKind
    from_status: str
    to_status: str
    credits_before: float
    credits_after: float
    alertable: bool
    snapshot: dict[str, Any] = field(repr=False)

    def execution(self) -> Execution:
        """The snapshot parsed back; `detail.input` reads as `{}` because it is not kept."""
        raw = copy.deepcopy(self.snapshot)
        detail = raw.get("detail")
        if isinstance(detail, dict):
            detail.setdefault("input", {})
        return Execution.model_validate(raw)


@dataclass(frozen=True)
class MessageRefRecord:
    """Where a sink posted the first message about an alert (Slack: channel and ts)."""

    channel: str
    ts: str
    single: bool  # the message was about this alert alone, not a digest


@dataclass(frozen=True)
class PruneResult:
    """How many rows one `Store.prune` call deleted."""

    states_deleted: int
    transitions_deleted: int
    alerts_deleted: int = 0
    notifications_deleted: int = 0  # delivered outbox rows
    silences_deleted: int = 0
    group_states_deleted: int = 0


@dataclass(frozen=True)
class AlertDelivery:
    """Where one notification about an alert stands, for one sink."""

    notification_id: str
    sink: str
    kind: str  # a NotificationKind
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None = None  # when delivery gave up (a dead letter)


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored: its latest version, when it was first stored and last
    changed (cycle times), its notifications per sink, oldest first, and its
    acknowledgement (None: not acknowledged)."""

    alert: Alert
    created_at: datetime
    updated_at: datetime
    deliveries: tuple[AlertDelivery, ...] = ()
    acknowledgement: Acknowledgement | None = None

    @property
    def notified_sinks(self) -> frozenset[str]:
        """Sinks that received at least one notification about this alert."""
        return frozenset(d.sink for d in self.deliveries if d.status == "delivered")


@dataclass(frozen=True)
class AlertPage:
    """One page of `Store.list_alerts`, newest first; `next_cursor` is None on the last."""

    alerts: list[StoredAlert]
    next_cursor: str | None


@dataclass(frozen=True)
class OutboxItem:
    """A claimed notification, leased to the caller until it marks it (or the lease ends).

    `attempts` counts the attempts made BEFORE this one (0 the first time), so backoff
    can be computed from it directly. `first_enqueued_at` is when the row entered the
    outbox, or was last replayed from the dead letters: `max_age` counts from it.
    `message_id`: the group message it went out in at its first attempt (None for an
    ungrouped notification, or a grouped one not attempted yet); a retry sends that
    message's members again, together.
    """

    notification: Notification
    attempts: int
    first_enqueued_at: datetime
    last_error: str | None
    message_id: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A notification that delivery gave up on, kept until replayed or purged."""

    notification: Notification
    attempts: int
    first_enqueued_at: datetime
    dead_at: datetime
    reason: str


@dataclass(frozen=True)
class ExecutionStats:
    """What ended within `buckets` buckets of `bucket_s` seconds from `since`: counts
    per (source, responder, bucket), and a histogram of durations per (source,
    responder): milliseconds truncated to two significant digits -> how many
    (`relay.domain.exec_stats.histogram_rank` reads percentiles off it)."""

    since: datetime
    bucket_s: int
    buckets: int
    counts: tuple[BucketCount, ...]  # by (source, responder_id, bucket)
    durations_ms: Mapping[tuple[str, str], Mapping[int, int]]


class OutboxCounts(NamedTuple):
    """Rows of one sink still to deliver, and given up on."""

    pending: int
    dead: int
