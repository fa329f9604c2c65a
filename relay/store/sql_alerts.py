"""Alerts, silences and windowed-rule group states in the shared SQL store: listing
and paging alerts, runtime silences, group states.

Invariants:
- Paging is keyset paging on (created_at, id), newest first: the cursor is the key of
  the last alert of a page (its `created_at` as fixed-width ISO UTC text, whatever the
  backend), so alerts added meanwhile never shift a later page and a cursor of one
  backend pages the other alike.
- A page and the deliveries of its alerts are read in one snapshot.
- An acknowledgement lives in columns of its alert beside the body (which a windowed
  alert's updates replace), is written once (the first one stays) and goes when its
  alert is pruned.
- Only runtime silences are stored (from the HTTP API or the CLI); config silences live
  in the settings and are merged by the caller. Expiring a silence sets `expired_at`
  and keeps the row (and its `ends_at`), so what was silenced stays explained.
- Group states are replaced whole by each cycle that carries them (in `commit_cycle`);
  a group's `episode` only ever grows, which keeps windowed alert ids unique.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from relay.domain.alerts import Alert
from relay.domain.silences import Silence
from relay.domain.windows import GroupState
from relay.store import sql
from relay.store.backend import Backend, Dialect, Params, Row, Session, from_iso_utc, iso_utc
from relay.store.records import AlertPage, StoredAlert
from relay.store.rows import (
    alert_from_row,
    group_from_row,
    silence_from_row,
    silence_params,
    stored_alert,
)
from relay.vocab import AlertState


def encode_cursor(created_at: str, alert_id: str) -> str:
    """The opaque cursor of the page after the alert (`created_at` as ISO UTC text)."""
    raw = json.dumps([created_at, alert_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """The (created_at, id) key a cursor holds; `ValueError` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError(f"malformed alert cursor {cursor!r}") from None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)):
        raise ValueError(f"malformed alert cursor {cursor!r}")
    try:
        from_iso_utc(key[0])  # a cursor with a bad time is as malformed as bad base64
    except ValueError:
        raise ValueError(f"malformed alert cursor {cursor!r}") from None
    return key[0], key[1]


def alert_page_query(
    *,
    dialect: Dialect,
    equal: Mapping[str, str | None],
    since: datetime | None,
    limit: int,
    before: str | None,
) -> tuple[str, Params]:
    """The statement of one page and its parameters, reading one row more than `limit`
    to know whether another page follows. `equal`: the columns (rule, state, source)
    an alert must equal, None where any value will do."""
    where: list[str] = []
    params: Params = {"limit": limit + 1}
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if since is not None:
        where.append("updated_at >= :since")
        params["since"] = dialect.encode_time(since)
    if before is not None:
        created_at, alert_id = decode_cursor(before)
        where.append("(created_at, id) < (:before_created_at, :before_id)")
        params["before_created_at"] = dialect.encode_time(from_iso_utc(created_at))
        params["before_id"] = alert_id
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"{sql.ALERT_SELECT}{clause} {sql.ALERTS_NEWEST_FIRST}", params


class SqlAlerts(Backend):
    """Alert listing, silences and group states of the store (see
    `relay.store.base.Store` for the contract)."""

    async def list_alerts(
        self,
        *,
        rule: str | None = None,
        state: AlertState | None = None,
        source: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> AlertPage:
        if limit <= 0:
            return AlertPage(alerts=[], next_cursor=None)
        equal = {"rule": rule, "state": state, "source": source}
        statement, params = alert_page_query(
            dialect=self.dialect, equal=equal, since=since, limit=limit, before=before
        )
        async with self._reading("list alerts", snapshot=True) as session:
            rows = (await session.fetch(statement, **params))[: limit + 1]
            page, more = rows[:limit], len(rows) > limit
            deliveries = await self._deliveries_of(session, [row["id"] for row in page])
        alerts = [self._stored(row, deliveries) for row in page]
        if not more:
            return AlertPage(alerts=alerts, next_cursor=None)
        last = alerts[-1]
        cursor = encode_cursor(iso_utc(last.created_at), last.alert.id)
        return AlertPage(alerts=alerts, next_cursor=cursor)

    async def get_alert(self, alert_id: str) -> StoredAlert | None:
        async with self._reading("read an alert", snapshot=True) as session:
            row = await session.fetch_one(f"{sql.ALERT_SELECT} WHERE id = :id", id=alert_id)
            deliveries = {} if row is None else await self._deliveries_of(session, [alert_id])
        return None if row is None else self._stored(row, deliveries)

    async def load_alerts(self, alert_ids: Collection[str]) -> dict[str, Alert]:
        ids = sorted(set(alert_ids))
        if not ids:
            return {}
        found: dict[str, Alert] = {}
        async with self._reading("load alerts") as session:
            for chunk in self.dialect.id_chunks(ids):
                condition, params = self.dialect.any_of("id", marker="ids", ids=chunk)
                for row in await session.fetch(f"{sql.ALERT_SELECT} WHERE {condition}", **params):
                    found[row["id"]] = alert_from_row(row)
        return found

    def _stored(self, row: Row, deliveries: dict[str, list[Row]]) -> StoredAlert:
        return stored_alert(row, deliveries.get(row["id"], ()), dialect=self.dialect)

    async def _deliveries_of(
        self, session: Session, alert_ids: Sequence[str]
    ) -> dict[str, list[Row]]:
        """Outbox rows of each alert, in enqueue order."""
        found: dict[str, list[Row]] = {}
        for chunk in self.dialect.id_chunks(alert_ids):
            condition, params = self.dialect.any_of("alert_id", marker="ids", ids=chunk)
            statement = f"{sql.DELIVERIES_SELECT} WHERE {condition} ORDER BY seq"
            for row in await session.fetch(statement, **params):
                found.setdefault(row["alert_id"], []).append(row)
        return found

    # --- acknowledgements ---------------------------------------------------------

    async def acknowledge_alert(
        self, alert_id: str, *, by: str, at: datetime, comment: str = ""
    ) -> bool:
        dialect = self.dialect
        params = {
            "id": alert_id,
            "by": dialect.clean_text(by),
            "at": dialect.encode_time(at),
            "comment": dialect.clean_text(comment),
        }
        async with self._writing("acknowledge an alert") as session:
            return await session.execute(sql.ACKNOWLEDGE_ALERT, **params) > 0

    async def acknowledged_among(self, alert_ids: Collection[str]) -> set[str]:
        wanted = sorted(set(alert_ids))
        found: set[str] = set()
        if not wanted:
            return found
        async with self._reading("read acknowledgements") as session:
            for chunk in self.dialect.id_chunks(wanted):
                condition, params = self.dialect.any_of("id", marker="ids", ids=chunk)
                rows = await session.fetch(f"{sql.ACKNOWLEDGED_AMONG}{condition}", **params)
                found.update(row["id"] for row in rows)
        return found

    # --- silences -----------------------------------------------------------------

    async def add_silence(self, silence: Silence) -> bool:
        params = silence_params(silence, dialect=self.dialect)
        async with self._writing("add a silence") as session:
            return await session.execute(sql.SILENCE_INSERT, **params) > 0

    async def get_silence(self, silence_id: str) -> Silence | None:
        async with self._reading("read a silence") as session:
            row = await session.fetch_one(f"{sql.SILENCE_SELECT} WHERE id = :id", id=silence_id)
        return None if row is None else silence_from_row(row, dialect=self.dialect)

    async def list_silences(self, *, now: datetime, include_expired: bool = False) -> list[Silence]:
        at = self.dialect.encode_time(now)
        async with self._reading("list silences") as session:
            if include_expired:
                rows = await session.fetch(sql.ALL_SILENCES)
            else:
                rows = await session.fetch(sql.LIVE_SILENCES, now=at)
        return [silence_from_row(row, dialect=self.dialect) for row in rows]

    async def expire_silence(self, silence_id: str, *, now: datetime) -> bool:
        at = self.dialect.encode_time(now)
        async with self._writing("expire a silence") as session:
            return await session.execute(sql.EXPIRE_SILENCE, id=silence_id, now=at) > 0

    # --- group states -------------------------------------------------------------

    async def load_group_states(self, source: str) -> dict[tuple[str, str], GroupState]:
        async with self._reading("load group states") as session:
            rows = await session.fetch(sql.GROUP_SELECT, source=source)
        states = (group_from_row(row, dialect=self.dialect) for row in rows)
        return {(s.rule, s.group_key): s for s in states}
