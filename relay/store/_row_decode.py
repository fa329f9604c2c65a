"""Rows back into records, for every backend: only the reading of timestamps differs
(ISO text in SQLite, `timestamptz` in PostgreSQL), so each backend passes its own.

Invariant: the column order is `_sqlite_rows.STATE_COLUMNS` and the group-state column
order of both schemas; a backend selects its columns in that order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from relay.domain.alerts import Alert
from relay.domain.state import TrackedExecution
from relay.domain.windows import GroupState
from relay.store.records import CycleResult
from relay.vocab import ExecutionKind

ReadTime = Callable[[Any], datetime]


def _optional(read_time: ReadTime, value: Any) -> datetime | None:
    return None if value is None else read_time(value)


def state_from_row(row: Any, *, read_time: ReadTime) -> TrackedExecution:
    return TrackedExecution(
        source=row[0],
        id=row[1],
        status=row[2],
        credits_used=float(row[3]),
        kind=cast(ExecutionKind, row[4]),
        responder_id=row[5],
        parent_id=row[6],
        agent_id=row[7],
        workflow_id=row[8],
        created_at=read_time(row[9]),
        updated_at=read_time(row[10]),
        started_at=read_time(row[11]),
        ended_at=_optional(read_time, row[12]),
        is_purged=bool(row[13]),
        last_seen_at=read_time(row[14]),
        reported_statuses=frozenset(json.loads(row[15])),
        origin_type=row[16],
        is_agentic=bool(row[17]),
    )


def group_from_row(row: Any, *, read_time: ReadTime) -> GroupState:
    return GroupState(
        source=row[0],
        rule=row[1],
        group_key=row[2],
        group=json.loads(row[3]),
        firing=bool(row[4]),
        episode=int(row[5]),
        fired_at=_optional(read_time, row[6]),
        last_notified_at=_optional(read_time, row[7]),
        reminders_sent=int(row[8]),
        value=None if row[9] is None else float(row[9]),
        resolved_at=_optional(read_time, row[10]),
    )


def alerts_to_store(result: CycleResult) -> list[Alert]:
    """The cycle's alerts, plus the alert of any notification the caller left out of
    `alerts`: the outbox never holds a notification whose alert is unknown."""
    alerts = list(result.alerts)
    listed = {a.id for a in alerts}
    alerts += [n.alert for n in result.notifications if n.alert.id not in listed]
    return alerts
