"""Records into statement parameters and rows back into records, for every backend.

Invariants:
- Parameters are by column name, and a column has the name of the record field it
  holds (`relay.store.sql`); rows are read by column name, never by position.
- Timestamps are encoded and decoded by the backend's `Dialect` (ISO text in SQLite,
  `timestamptz` in PostgreSQL); everything else is stored alike: booleans as given
  (SQLite keeps them as 0/1), `reported_statuses` a sorted JSON array, snapshots compact
  JSON, alerts and notifications the compact JSON of `relay.domain.codec`, silence
  matchers a JSON array of canonical matcher strings, or the `{name: value}` map older
  relays wrote (still written for equality-only silences, read as equality matchers).
- Encoding happens before a backend takes its lock or connection and decoding after it
  is released, so a bad record (a naive datetime) fails before any statement runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast, get_args

from relay.domain.acks import Acknowledgement
from relay.domain.alerts import Alert, Notification
from relay.domain.codec import (
    alert_from_dict,
    alert_to_dict,
    notification_from_dict,
    notification_to_dict,
)
from relay.domain.silences import Silence, SilenceOrigin, as_label_map
from relay.domain.state import SourceCursor, TrackedExecution, Transition, TransitionKind
from relay.domain.windows import GroupState
from relay.matchers import Matcher, parse_matcher
from relay.store.backend import Dialect, Params, Row
from relay.store.base import execution_snapshot
from relay.store.records import (
    AlertDelivery,
    DeadLetter,
    DeliveryStatus,
    MessageRefRecord,
    OutboxItem,
    StoredAlert,
    StoredTransition,
)
from relay.vocab import ExecutionKind

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def compact_json(value: object) -> str:
    """JSON text as stored: compact, and strictly JSON (no NaN), so any backend reads it."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def _labels_json(labels: Mapping[str, str]) -> str:
    return compact_json(dict(sorted(labels.items())))


def _record_params(record: DataclassInstance, *, dialect: Dialect, **columns: Any) -> Params:
    """The record's fields by name, timestamps as `dialect` stores them; `columns` adds
    (or replaces) the columns that hold something other than a field as it is."""
    params = {f.name: getattr(record, f.name) for f in fields(record)}
    encoded = {
        name: dialect.encode_time(value) if isinstance(value, datetime) else value
        for name, value in params.items()
    }
    return encoded | columns


def _one_of(value: str, literal: Any, *, what: str) -> str:
    """`value`, checked against the values of a `Literal` type."""
    if value not in get_args(literal):
        raise ValueError(f"unknown {what} {value!r}")
    return value


# --- executions, transitions, cursors ---------------------------------------------------


def state_params(state: TrackedExecution, *, dialect: Dialect) -> Params:
    statuses = json.dumps(sorted(state.reported_statuses))
    return _record_params(state, dialect=dialect, reported_statuses=statuses)


def state_from_row(row: Row, *, dialect: Dialect) -> TrackedExecution:
    time = dialect.decode_time
    return TrackedExecution(
        source=row["source"],
        id=row["id"],
        status=row["status"],
        credits_used=float(row["credits_used"]),
        kind=cast(ExecutionKind, row["kind"]),
        responder_id=row["responder_id"],
        parent_id=row["parent_id"],
        agent_id=row["agent_id"],
        workflow_id=row["workflow_id"],
        created_at=time(row["created_at"]),
        updated_at=time(row["updated_at"]),
        started_at=time(row["started_at"]),
        ended_at=dialect.time_or_none(row["ended_at"]),
        is_purged=bool(row["is_purged"]),
        last_seen_at=time(row["last_seen_at"]),
        reported_statuses=frozenset(json.loads(row["reported_statuses"])),
        origin_type=row["origin_type"],
        is_agentic=bool(row["is_agentic"]),
    )


def transition_params(transition: Transition, *, dialect: Dialect) -> Params:
    snapshot = json.dumps(execution_snapshot(transition.execution), separators=(",", ":"))
    return _record_params(transition, dialect=dialect, key=transition.key, snapshot=snapshot)


def transition_from_row(row: Row, *, dialect: Dialect) -> StoredTransition:
    return StoredTransition(
        key=row["key"],
        source=row["source"],
        execution_id=row["execution_id"],
        kind=cast(TransitionKind, row["kind"]),
        from_status=row["from_status"],
        to_status=row["to_status"],
        credits_before=float(row["credits_before"]),
        credits_after=float(row["credits_after"]),
        observed_at=dialect.decode_time(row["observed_at"]),
        alertable=bool(row["alertable"]),
        snapshot=json.loads(row["snapshot"]),
    )


def cursor_params(cursor: SourceCursor, *, dialect: Dialect) -> Params:
    return _record_params(cursor, dialect=dialect)


def cursor_from_row(row: Row, *, dialect: Dialect) -> SourceCursor:
    return SourceCursor(
        source=row["source"],
        first_poll_done=bool(row["first_poll_done"]),
        last_success_at=dialect.time_or_none(row["last_success_at"]),
    )


def message_ref_params(
    ref: MessageRefRecord, *, sink: str, alert_id: str, at: datetime, dialect: Dialect
) -> Params:
    created_at = dialect.encode_time(at)
    return _record_params(ref, dialect=dialect, sink=sink, alert_id=alert_id, created_at=created_at)


def message_ref_from_row(row: Row) -> MessageRefRecord:
    return MessageRefRecord(channel=row["channel"], ts=row["ts"], single=bool(row["single"]))


# --- alerts and the outbox --------------------------------------------------------------


def alert_params(alert: Alert, *, at: datetime, dialect: Dialect) -> Params:
    """The row of an alert stored at `at` (the cycle's time)."""
    when = dialect.encode_time(at)
    return {
        "id": alert.id,
        "source": alert.source,
        "rule": alert.rule,
        "state": alert.state,
        # Windowed alerts are about a group, not an execution, and change as it does.
        "windowed": alert.execution is None,
        "created_at": when,
        "updated_at": when,
        "body": compact_json(alert_to_dict(alert)),
    }


def outbox_params(notification: Notification, *, dialect: Dialect) -> Params:
    """The row of a notification, due at its creation (a grouped one's due time is its
    group's, set by the store when it enqueues it)."""
    body = compact_json(notification_to_dict(notification))
    group = notification.group
    return _record_params(
        notification,
        dialect=dialect,
        alert_id=notification.alert.id,
        body=body,
        next_attempt_at=dialect.encode_time(notification.created_at),
        group_key=None if group is None else group.key,
    )


def acknowledgement_from_row(row: Row, *, dialect: Dialect) -> Acknowledgement | None:
    at = dialect.time_or_none(row["acked_at"])
    if at is None:
        return None
    return Acknowledgement(by=row["acked_by"] or "", at=at, comment=row["ack_comment"] or "")


def alert_from_row(row: Row) -> Alert:
    return alert_from_dict(json.loads(row["body"]))


def stored_alert(row: Row, deliveries: Sequence[Row], *, dialect: Dialect) -> StoredAlert:
    return StoredAlert(
        acknowledgement=acknowledgement_from_row(row, dialect=dialect),
        alert=alert_from_row(row),
        created_at=dialect.decode_time(row["created_at"]),
        updated_at=dialect.decode_time(row["updated_at"]),
        deliveries=tuple(
            AlertDelivery(
                notification_id=d["id"],
                sink=d["sink"],
                kind=d["kind"],
                status=cast(
                    DeliveryStatus, _one_of(d["status"], DeliveryStatus, what="outbox status")
                ),
                attempts=int(d["attempts"]),
                last_error=d["last_error"],
                delivered_at=dialect.time_or_none(d["delivered_at"]),
                dead_at=dialect.time_or_none(d["dead_at"]),
            )
            for d in deliveries
        ),
    )


def outbox_item(row: Row, *, dialect: Dialect) -> OutboxItem:
    return OutboxItem(
        notification=notification_from_dict(json.loads(row["body"])),
        attempts=int(row["attempts"]),
        first_enqueued_at=dialect.decode_time(row["enqueued_at"]),
        last_error=row["last_error"],
        message_id=row["message_id"],
    )


def dead_letter(row: Row, *, dialect: Dialect) -> DeadLetter:
    return DeadLetter(
        notification=notification_from_dict(json.loads(row["body"])),
        attempts=int(row["attempts"]),
        first_enqueued_at=dialect.decode_time(row["enqueued_at"]),
        dead_at=dialect.decode_time(row["dead_at"]),
        reason=row["last_error"] or "",
    )


# --- silences and group states ----------------------------------------------------------


def silence_params(silence: Silence, *, dialect: Dialect) -> Params:
    """Matchers as a JSON array of their canonical strings (`["team=~\\"pay.*\\""]`),
    except equality-only ones with distinct names: those keep the `{name: value}` map of
    older relays, so a replica not yet upgraded (a rolling upgrade) still reads them.
    Only runtime silences are stored, and those are never recurring."""
    if silence.time_intervals:
        raise ValueError(f"silence {silence.id}: a recurring silence cannot be stored")
    # A map in the matchers' order (not sorted), so the silence reads back equal.
    as_map = as_label_map(silence.matchers)
    matchers = compact_json(as_map if as_map is not None else [str(m) for m in silence.matchers])
    return _record_params(silence, dialect=dialect, matchers=matchers)


def silence_matchers(text: str) -> tuple[Matcher, ...]:
    """Stored matchers: the array `silence_params` writes, or the `{name: value}` map
    written before matchers had operators (read as equality matchers)."""
    value = json.loads(text)
    if isinstance(value, dict):
        return tuple(Matcher.equal(name, str(v)) for name, v in value.items())
    return tuple(parse_matcher(entry) for entry in value)


def silence_from_row(row: Row, *, dialect: Dialect) -> Silence:
    time = dialect.decode_time
    return Silence(
        id=row["id"],
        matchers=silence_matchers(row["matchers"]),
        starts_at=time(row["starts_at"]),
        ends_at=time(row["ends_at"]),
        creator=row["creator"],
        comment=row["comment"],
        created_at=time(row["created_at"]),
        expired_at=dialect.time_or_none(row["expired_at"]),
        origin=cast(SilenceOrigin, _one_of(row["origin"], SilenceOrigin, what="silence origin")),
    )


def group_params(state: GroupState, *, at: datetime, dialect: Dialect) -> Params:
    labels = _labels_json(state.group)
    return _record_params(
        state, dialect=dialect, group_labels=labels, updated_at=dialect.encode_time(at)
    )


def group_from_row(row: Row, *, dialect: Dialect) -> GroupState:
    return GroupState(
        source=row["source"],
        rule=row["rule"],
        group_key=row["group_key"],
        group=json.loads(row["group_labels"]),
        firing=bool(row["firing"]),
        episode=int(row["episode"]),
        fired_at=dialect.time_or_none(row["fired_at"]),
        last_notified_at=dialect.time_or_none(row["last_notified_at"]),
        reminders_sent=int(row["reminders_sent"]),
        value=None if row["value"] is None else float(row["value"]),
        resolved_at=dialect.time_or_none(row["resolved_at"]),
    )
