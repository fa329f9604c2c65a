"""Rows of the SQLite store: how records become column values and back, and how
`sqlite3` errors become `StoreError`s that say what to do.

Invariants:
- Datetimes are fixed-width ISO 8601 UTC text (`2026-01-02T03:04:05.000006Z`): exact to
  the microsecond, readable in the sqlite3 shell, ordered when compared as text. A naive
  datetime is refused rather than guessed.
- Booleans are 0/1, `reported_statuses` a sorted JSON array, snapshots compact JSON.
- Column order matches `STATE_COLUMNS` and `TRANSITION_COLUMNS`.
- Alerts and notifications are stored as the compact JSON of `relay.domain.codec`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from relay.domain.state import SourceCursor, TrackedExecution, Transition, TransitionKind
from relay.errors import StoreError
from relay.store._row_decode import state_from_row as decode_state
from relay.store.base import StoredTransition, execution_snapshot

T = TypeVar("T")

# SQLite accepts up to 32766 bound parameters a statement; stay far below it.
IDS_PER_QUERY = 500

STATE_COLUMNS: tuple[str, ...] = (
    "source",
    "id",
    "status",
    "credits_used",
    "kind",
    "responder_id",
    "parent_id",
    "agent_id",
    "workflow_id",
    "created_at",
    "updated_at",
    "started_at",
    "ended_at",
    "is_purged",
    "last_seen_at",
    "reported_statuses",
    "origin_type",
    "is_agentic",
)
TRANSITION_COLUMNS: tuple[str, ...] = (
    "key",
    "source",
    "execution_id",
    "kind",
    "from_status",
    "to_status",
    "credits_before",
    "credits_after",
    "observed_at",
    "alertable",
    "snapshot",
)


def store_error(path: Path, action: str, exc: sqlite3.Error, busy_timeout_s: float) -> StoreError:
    """The `StoreError` for `exc`, naming the file and saying what to do about it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    detail = str(exc)
    if name == "SQLITE_FULL":
        advice = "the disk is full; free space on it or lower store.retention"
    elif name.startswith("SQLITE_READONLY"):
        advice = (
            "the file is read-only; give this user write access to it and to its "
            "directory (SQLite writes -wal and -shm files beside it)"
        )
    elif name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        advice = (
            "cannot open the file; check that the path is a file (not a directory) and "
            "that this user may read and write it and its directory"
        )
    elif name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        advice = (
            f"another process held the database lock for over {busy_timeout_s:g}s; run "
            "one zaia-relay per SQLite file (several replicas need PostgreSQL)"
        )
    elif name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
        advice = (
            "the file is not a zaia-relay database or is damaged; point store.url at "
            "another file, or restore a backup"
        )
    elif name.startswith("SQLITE_IOERR"):
        advice = (
            "the disk failed a read or write; check the disk and the filesystem "
            "(network filesystems cannot host SQLite's WAL)"
        )
    else:
        advice = "check the file and its disk, or point store.url elsewhere"
    return StoreError(f"sqlite store {path}: cannot {action}: {detail}; {advice}")


def encode_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC only")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def decode_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def time_or_none(text: str | None) -> datetime | None:
    return None if text is None else decode_time(text)


def state_to_row(state: TrackedExecution) -> tuple[Any, ...]:
    return (
        state.source,
        state.id,
        state.status,
        state.credits_used,
        state.kind,
        state.responder_id,
        state.parent_id,
        state.agent_id,
        state.workflow_id,
        encode_time(state.created_at),
        encode_time(state.updated_at),
        encode_time(state.started_at),
        None if state.ended_at is None else encode_time(state.ended_at),
        int(state.is_purged),
        encode_time(state.last_seen_at),
        json.dumps(sorted(state.reported_statuses)),
        state.origin_type,
        int(state.is_agentic),
    )


def transition_from_row(row: Any) -> StoredTransition:
    return StoredTransition(
        key=row[0],
        source=row[1],
        execution_id=row[2],
        kind=cast(TransitionKind, row[3]),
        from_status=row[4],
        to_status=row[5],
        credits_before=float(row[6]),
        credits_after=float(row[7]),
        observed_at=decode_time(row[8]),
        alertable=bool(row[9]),
        snapshot=json.loads(row[10]),
    )


def transition_to_row(transition: Transition) -> tuple[Any, ...]:
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
        encode_time(t.observed_at),
        int(t.alertable),
        json.dumps(execution_snapshot(t.execution), separators=(",", ":")),
    )


def cursor_to_row(cursor: SourceCursor) -> tuple[Any, ...]:
    last = cursor.last_success_at
    return (cursor.source, int(cursor.first_poll_done), None if last is None else encode_time(last))


def cursor_from_row(row: Any) -> SourceCursor:
    return SourceCursor(
        source=row[0], first_poll_done=bool(row[1]), last_success_at=time_or_none(row[2])
    )


def compact_json(value: object) -> str:
    """JSON text as stored: compact, and strictly JSON (no NaN), so any backend reads it."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def chunks(items: Sequence[T], size: int = IDS_PER_QUERY) -> Iterator[Sequence[T]]:
    """`items` in slices small enough to bind in one statement."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(count: int) -> str:
    """`?, ?, ...`: `count` placeholders for an `IN (...)` list."""
    return ", ".join("?" for _ in range(count))


def state_from_row(row: Any) -> TrackedExecution:
    return decode_state(row, read_time=decode_time)
