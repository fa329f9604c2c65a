"""Silences and windowed-rule group states in the SQLite store.

Invariants:
- Functions here run inside a transaction the caller opened; they never commit.
- Only runtime silences are stored (from the HTTP API or the CLI); config silences live
  in the settings and are merged by the caller.
- Expiring a silence sets `expired_at` and keeps the row (and its `ends_at`), so what
  was silenced stays explained; pruning deletes silences that ended long ago.
- Group states are replaced whole by each cycle that carries them; a group's `episode`
  only ever grows, which keeps windowed alert ids unique (see `prune`).
- Matchers and group labels are stored as JSON objects of strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast, get_args

from relay.domain.silences import Silence, SilenceOrigin
from relay.domain.windows import GroupState
from relay.store._row_decode import group_from_row
from relay.store._sqlite_base import SqliteBase
from relay.store._sqlite_rows import compact_json, decode_time, encode_time, time_or_none

SILENCE_COLUMNS = (
    "id",
    "matchers",
    "starts_at",
    "ends_at",
    "creator",
    "comment",
    "created_at",
    "expired_at",
    "origin",
)
_SILENCE_SELECT = f"SELECT {', '.join(SILENCE_COLUMNS)} FROM silences"
_SILENCE_INSERT = (
    f"INSERT INTO silences ({', '.join(SILENCE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in SILENCE_COLUMNS)}) ON CONFLICT (id) DO NOTHING"
)
# Active or pending: not expired by hand, not yet ended.
LIVE_SILENCES = (
    f"{_SILENCE_SELECT} WHERE ends_at > ? AND (expired_at IS NULL OR expired_at > ?) "
    "ORDER BY starts_at, id"
)
_EXPIRE_SILENCE = (
    "UPDATE silences SET expired_at = ? "
    "WHERE id = ? AND ends_at > ? AND (expired_at IS NULL OR expired_at > ?)"
)
PRUNE_SILENCES = "DELETE FROM silences WHERE min(ends_at, coalesce(expired_at, ends_at)) < ?"

GROUP_COLUMNS = (
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
GROUP_SELECT = f"SELECT {', '.join(GROUP_COLUMNS)} FROM group_states WHERE source = ?"
GROUP_UPSERT = (
    f"INSERT INTO group_states ({', '.join(GROUP_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in GROUP_COLUMNS)}) "
    "ON CONFLICT (source, rule, group_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in GROUP_COLUMNS[3:])
)
# A group that fired keeps its row: a new row would start again at episode 0 and reuse
# the alert ids of episodes that may still be stored (or dead letters to replay).
PRUNE_GROUPS = "DELETE FROM group_states WHERE firing = 0 AND episode = 0 AND updated_at < ?"


def _labels_json(labels: Mapping[str, str]) -> str:
    return compact_json(dict(sorted(labels.items())))


def silence_to_row(silence: Silence) -> tuple[Any, ...]:
    s = silence
    expired = None if s.expired_at is None else encode_time(s.expired_at)
    return (
        s.id,
        _labels_json(s.matchers),
        encode_time(s.starts_at),
        encode_time(s.ends_at),
        s.creator,
        s.comment,
        encode_time(s.created_at),
        expired,
        s.origin,
    )


def silence_from_row(row: Any) -> Silence:
    return Silence(
        id=row[0],
        matchers=json.loads(row[1]),
        starts_at=decode_time(row[2]),
        ends_at=decode_time(row[3]),
        creator=row[4],
        comment=row[5],
        created_at=decode_time(row[6]),
        expired_at=time_or_none(row[7]),
        origin=_origin(row[8]),
    )


def _origin(value: str) -> SilenceOrigin:
    if value not in get_args(SilenceOrigin):
        raise ValueError(f"unknown silence origin {value!r}")
    return cast(SilenceOrigin, value)


def group_to_row(state: GroupState, *, at: datetime) -> tuple[Any, ...]:
    g = state
    return (
        g.source,
        g.rule,
        g.group_key,
        _labels_json(g.group),
        int(g.firing),
        g.episode,
        None if g.fired_at is None else encode_time(g.fired_at),
        None if g.last_notified_at is None else encode_time(g.last_notified_at),
        g.reminders_sent,
        g.value,
        None if g.resolved_at is None else encode_time(g.resolved_at),
        encode_time(at),
    )


class SqliteRules(SqliteBase):
    """Silences and group states of `SqliteStore` (see `relay.store.base.Store`)."""

    async def add_silence(self, silence: Silence) -> bool:
        row = silence_to_row(silence)
        async with (
            self._writing("add a silence") as conn,
            conn.execute(_SILENCE_INSERT, row) as cursor,
        ):
            return cursor.rowcount > 0

    async def get_silence(self, silence_id: str) -> Silence | None:
        async with self._reading("read a silence") as conn:
            rows = list(
                await conn.execute_fetchall(f"{_SILENCE_SELECT} WHERE id = ?", (silence_id,))
            )
        return silence_from_row(rows[0]) if rows else None

    async def list_silences(self, *, now: datetime, include_expired: bool = False) -> list[Silence]:
        at = encode_time(now)
        async with self._reading("list silences") as conn:
            if include_expired:
                rows = await conn.execute_fetchall(f"{_SILENCE_SELECT} ORDER BY starts_at, id")
            else:
                rows = await conn.execute_fetchall(LIVE_SILENCES, (at, at))
        return [silence_from_row(row) for row in rows]

    async def expire_silence(self, silence_id: str, *, now: datetime) -> bool:
        at = encode_time(now)
        async with (
            self._writing("expire a silence") as conn,
            conn.execute(_EXPIRE_SILENCE, (at, silence_id, at, at)) as cursor,
        ):
            return cursor.rowcount > 0

    async def load_group_states(self, source: str) -> dict[tuple[str, str], GroupState]:
        async with self._reading("load group states") as conn:
            rows = await conn.execute_fetchall(GROUP_SELECT, (source,))
        states = (group_from_row(row, read_time=decode_time) for row in rows)
        return {(s.rule, s.group_key): s for s in states}
