"""The outbox of the shared SQL store: claiming with leases, marking, dead letters.

Invariants:
- A lease is `next_attempt_at` pushed to the lease's end: a leased row is simply not
  due, so lease expiry needs no sweeper and a crashed claimer's rows come back alone.
  What keeps two claimers off one row is the backend's (`Session.claim`): SQLite queues
  claimers on its write lock, PostgreSQL skips rows another claimer has locked.
- A claim also sets `claimed`, and every settle (delivered, silenced, retried, dead,
  replayed) clears it: a row pending and claimed is leased, never a scheduled retry.
  That is what a SQLite daemon hands back at start (`release_own_leases`).
- Only pending rows are leased, retried, silenced or killed; delivered is final (a dead
  row may still become delivered, when a slow attempt succeeded after all).
- Row statuses are 'pending', 'delivered', 'dead' and 'silenced' (settled without
  sending: a silence matched when it fell due); nothing else is ever written.
- A sink's error is kept to its first `MAX_ERROR_CHARS` characters, lone surrogates
  replaced (`relay.scrub.encodable`), so recording a failure never fails.
- Route groups: a grouped row is enqueued due when its group's message is
  (`relay.domain.grouping.group_due_at`, from facts read in the enqueueing transaction;
  PostgreSQL locks the pending row it joins, so no claim takes it meanwhile). A claim
  that takes some of a group's due rows takes the rest too (`GROUP_CLAIM_MAX` a group),
  and one that takes a member of a stamped message takes its other pending members,
  due or not (unless another claimer holds them): an attempted message goes whole.
  `message_id` and `message_at` are written once, by `stamp_messages`, and kept through
  retries, dead letters and replays: a group message never gains members (it may lose
  some, settled without being sent). One exception: a dead member replayed after the
  rest of its message was delivered is unstamped, and goes in a new message.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from relay.domain.alerts import Notification
from relay.domain.grouping import GROUP_MESSAGE_MAX, GroupFacts, group_due_at
from relay.scrub import encodable
from relay.store import sql
from relay.store.backend import Backend, Dialect, Params, Session, distinct_ids
from relay.store.records import DeadLetter, OutboxCounts, OutboxItem
from relay.store.rows import compact_json, dead_letter, outbox_item

# A sink's error can quote a whole response body; the outbox keeps its head.
MAX_ERROR_CHARS = 2000
# The most rows of one group a claim adds to complete it: several messages' worth.
GROUP_CLAIM_MAX = 10 * GROUP_MESSAGE_MAX


def dead_filter(
    sink: str | Collection[str] | None, ids: Sequence[str] | None, *, dialect: Dialect
) -> tuple[str, Params]:
    """The condition that picks the dead letters of `sink` (one name or several; all
    when None) among `ids` (or all)."""
    where = ["status = 'dead'"]
    params: Params = {}
    if isinstance(sink, str):
        where.append("sink = :sink")
        params["sink"] = sink
    elif sink is not None:
        # A sink's delivery targets: a few names, one statement's worth.
        condition, sink_params = dialect.any_of("sink", marker="sinks", ids=sorted(set(sink)))
        where.append(condition)
        params |= sink_params
    if ids is not None:
        condition, id_params = dialect.any_of("id", marker="ids", ids=ids)
        where.append(condition)
        params |= id_params
    return " AND ".join(where), params


def dead_query(
    *, sink: str | Collection[str] | None, limit: int, dialect: Dialect
) -> tuple[str, Params]:
    """The statement listing dead letters, most recently dead first, and its parameters."""
    where, params = dead_filter(sink, None, dialect=dialect)
    return f"{sql.DEAD_SELECT} WHERE {where} {sql.DEAD_NEWEST_FIRST}", params | {"limit": limit}


class SqlOutbox(Backend):
    """The outbox methods of the store (see `relay.store.base.Store` for the contract)."""

    def _error_text(self, text: str) -> str:
        # Whatever a sink's error holds (a receiver's bytes), the row can be written.
        return self.dialect.clean_text(encodable(text[:MAX_ERROR_CHARS]))

    async def claim_due(
        self,
        sink: str,
        *,
        now: datetime,
        limit: int,
        lease_s: float,
        grouped: bool | None = None,
    ) -> list[OutboxItem]:
        if not lease_s > 0:
            raise ValueError(f"lease_s must be positive, got {lease_s!r}")
        if limit <= 0:
            return []
        at = self.dialect.encode_time(now)
        lease_end = self.dialect.encode_time(now + timedelta(seconds=lease_s))
        async with self._writing("claim notifications") as session:
            rows = await session.claim(
                sink=sink, now=at, lease_end=lease_end, limit=limit, grouped=grouped
            )
            keys = list(dict.fromkeys(row["group_key"] for row in rows if row["group_key"]))
            if keys:
                # The claim's limit may have cut a group: take the rest of it too.
                rows += await session.claim_groups(
                    sink=sink,
                    now=at,
                    lease_end=lease_end,
                    keys=keys,
                    limit=GROUP_CLAIM_MAX * len(keys),
                )
            messages = list(dict.fromkeys(row["message_id"] for row in rows if row["message_id"]))
            if messages:
                # A message that was attempted goes whole: its members not due yet too.
                rows += await session.claim_messages(
                    sink=sink,
                    lease_end=lease_end,
                    message_ids=messages,
                    limit=GROUP_MESSAGE_MAX * len(messages),
                )
        # A claim may return its rows in any order (PostgreSQL's RETURNING has none): put
        # them back in due order, enqueue order among equals.
        ordered = sorted(rows, key=lambda row: (row["next_attempt_at"], row["seq"]))
        return [outbox_item(row, dialect=self.dialect) for row in ordered]

    async def stamp_messages(
        self, sink: str, messages: Mapping[str, Collection[str]], *, now: datetime
    ) -> int:
        at = self.dialect.encode_time(now)
        changed = 0
        async with self._writing("fix the members of group messages") as session:
            for message_id, ids in messages.items():
                wanted = distinct_ids(ids, method="stamp_messages")
                for chunk in self.dialect.id_chunks(wanted):
                    condition, id_params = self.dialect.any_of("id", marker="ids", ids=chunk)
                    changed += await session.execute(
                        sql.STAMP_MESSAGE.format(ids=condition),
                        sink=sink,
                        message_id=message_id,
                        now=at,
                        **id_params,
                    )
        return changed

    async def _schedule_groups(
        self, session: Session, notifications: Sequence[Notification], rows: Sequence[Params]
    ) -> None:
        """Set the due time of each grouped row to its group's message's
        (`relay.domain.grouping.group_due_at`), from what the outbox holds of the group
        and what this batch added before it. Runs in the enqueueing transaction.

        The groups are looked up (PostgreSQL: locked) in (sink, group key) order, not
        the batch's: two transactions enqueueing into the same groups then lock them in
        the same order, and cannot deadlock on each other."""
        touched = {(n.sink, n.group.key) for n in notifications if n.group is not None}
        facts: dict[tuple[str, str], GroupFacts] = {}
        for where in sorted(touched):
            facts[where] = await self._group_facts(session, *where)
        for notification, row in zip(notifications, rows, strict=True):
            group = notification.group
            if group is None:
                continue
            where = (notification.sink, group.key)
            due = group_due_at(now=notification.created_at, wait_s=group.wait_s, facts=facts[where])
            facts[where] = GroupFacts(pending_due_at=due, last_message_at=None)
            row["next_attempt_at"] = self.dialect.encode_time(due)

    async def _group_facts(self, session: Session, sink: str, group_key: str) -> GroupFacts:
        pending = await session.fetch(
            sql.GROUP_PENDING.format(lock=self.dialect.row_lock), sink=sink, group_key=group_key
        )
        last = await session.fetch_one(sql.GROUP_LAST_MESSAGE, sink=sink, group_key=group_key)
        due_times = [self.dialect.decode_time(row["next_attempt_at"]) for row in pending]
        return GroupFacts(
            pending_due_at=min(due_times, default=None),
            last_message_at=None if last is None else self.dialect.time_or_none(last["at"]),
        )

    async def mark_delivered(self, sink: str, ids: Collection[str], *, now: datetime) -> int:
        return await self._mark_each(
            sql.MARK_DELIVERED,
            ids,
            "mark notifications delivered",
            method="mark_delivered",
            sink=sink,
            now=self.dialect.encode_time(now),
        )

    async def mark_silenced(
        self, sink: str, ids: Collection[str], *, reason: str, now: datetime
    ) -> int:
        return await self._mark_each(
            sql.MARK_SILENCED,
            ids,
            "mark notifications silenced",
            method="mark_silenced",
            sink=sink,
            now=self.dialect.encode_time(now),
            reason=self._error_text(reason),
        )

    async def _mark_each(
        self, statement: str, ids: Collection[str], action: str, *, method: str, **params: Any
    ) -> int:
        wanted = distinct_ids(ids, method=method)
        if not wanted:
            return 0
        changed = 0
        async with self._writing(action) as session:
            for chunk in self.dialect.id_chunks(wanted):
                condition, id_params = self.dialect.any_of("id", marker="ids", ids=chunk)
                changed += await session.execute(
                    statement.format(ids=condition), **params, **id_params
                )
        return changed

    async def mark_retry(
        self, sink: str, notification_id: str, *, next_attempt_at: datetime, error: str
    ) -> bool:
        at = self.dialect.encode_time(next_attempt_at)
        return await self._settle(
            sql.MARK_RETRY,
            "schedule a notification retry",
            sink,
            notification_id,
            reason=error,
            next_attempt_at=at,
        )

    async def mark_dead(
        self, sink: str, notification_id: str, *, reason: str, now: datetime
    ) -> bool:
        at = self.dialect.encode_time(now)
        return await self._settle(
            sql.MARK_DEAD,
            "move a notification to the dead letters",
            sink,
            notification_id,
            reason=reason,
            now=at,
        )

    async def _settle(
        self,
        statement: str,
        action: str,
        sink: str,
        notification_id: str,
        *,
        reason: str,
        **params: Any,
    ) -> bool:
        """Run `statement` on one pending notification, with `reason` as its last error;
        whether it was pending."""
        async with self._writing(action) as session:
            changed = await session.execute(
                statement, sink=sink, id=notification_id, reason=self._error_text(reason), **params
            )
        return changed > 0

    async def dead_letters(
        self, *, sink: str | Collection[str] | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        if limit <= 0:
            return []
        statement, params = dead_query(sink=sink, limit=limit, dialect=self.dialect)
        async with self._reading("list dead letters") as session:
            rows = await session.fetch(statement, **params)
        return [dead_letter(row, dialect=self.dialect) for row in rows]

    async def retry_dead(
        self,
        *,
        now: datetime,
        sink: str | Collection[str] | None = None,
        ids: Collection[str] | None = None,
    ) -> int:
        at = self.dialect.encode_time(now)
        return await self._each_dead(
            sql.REPLAY_DEAD,
            "replay dead letters",
            method="retry_dead",
            sink=sink,
            ids=ids,
            first=sql.UNSTAMP_STRAGGLERS,
            now=at,
        )

    async def purge_dead(
        self, *, sink: str | Collection[str] | None = None, ids: Collection[str] | None = None
    ) -> int:
        return await self._each_dead(
            sql.PURGE_DEAD, "purge dead letters", method="purge_dead", sink=sink, ids=ids
        )

    async def _each_dead(
        self,
        head: str,
        action: str,
        *,
        method: str,
        sink: str | Collection[str] | None,
        ids: Collection[str] | None,
        first: str | None = None,
        **params: Any,
    ) -> int:
        """Run `head` on the dead letters of `sink` (or all), among `ids` (or all);
        `first` (a statement ending in `WHERE ... AND `), on the same rows just before."""
        groups: list[Sequence[str] | None] = [None]
        if ids is not None:
            groups = list(self.dialect.id_chunks(distinct_ids(ids, method=method)))
            if not groups:
                return 0
        changed = 0
        async with self._writing(action) as session:
            for group in groups:
                where, filter_params = dead_filter(sink, group, dialect=self.dialect)
                if first is not None:
                    await session.execute(first + where, **filter_params)
                changed += await session.execute(head + where, **params, **filter_params)
        return changed

    async def retarget(self, old: str, new: Sequence[str]) -> int:
        targets = [target for target in dict.fromkeys(new) if target != old]
        if not targets:
            return 0
        async with self._writing("move notifications to renamed targets") as session:
            rows = await session.fetch(sql.RETARGET_SELECT, sink=old)
            if not rows:
                return 0
            copies: list[dict[str, Any]] = []
            for row in rows:
                body = json.loads(row["body"])
                for target in targets:
                    body["sink"] = target
                    copies.append(
                        {
                            "id": row["id"],
                            "sink": target,
                            "alert_id": row["alert_id"],
                            "kind": row["kind"],
                            "status": row["status"],
                            "enqueued_at": row["enqueued_at"],
                            "next_attempt_at": row["next_attempt_at"],
                            "attempts": row["attempts"],
                            "last_error": row["last_error"],
                            "dead_at": row["dead_at"],
                            "body": compact_json(body),
                            "group_key": row["group_key"],
                        }
                    )
            await session.execute_many(sql.RETARGET_INSERT, copies)
            await session.execute(sql.RETARGET_DELETE, sink=old)
        return len(rows)

    async def outbox_counts(self) -> dict[str, OutboxCounts]:
        async with self._reading("count outbox rows", snapshot=True) as session:
            pending = {r["sink"]: int(r["n"]) for r in await session.fetch(sql.COUNT_PENDING)}
            dead = {r["sink"]: int(r["n"]) for r in await session.fetch(sql.COUNT_DEAD)}
        return {
            sink: OutboxCounts(pending=pending.get(sink, 0), dead=dead.get(sink, 0))
            for sink in sorted(pending.keys() | dead.keys())
        }

    async def next_due_at(self, sink: str, *, grouped: bool | None = None) -> datetime | None:
        statement = sql.NEXT_DUE + sql.grouped_filter(grouped)
        async with self._reading("find the next due notification") as session:
            row = await session.fetch_one(statement, sink=sink)
        return None if row is None else self.dialect.time_or_none(row["due"])
