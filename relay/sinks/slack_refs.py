"""Slack message references kept in the store, so edits on resolve survive restarts.

Invariant: a reference is written after Slack accepted the message it names, and read
only to edit or reply to that message; a missing one (pruned, or never stored) makes a
resolve post a new message, as after a restart without this store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from relay.clock import utcnow
from relay.sinks.slack import MessageRef
from relay.store.base import Store
from relay.store.records import MessageRefRecord


class StoredMessageRefs:
    """`slack.MessageRefs` for one sink, backed by the relay's store."""

    def __init__(self, store: Store, sink: str, *, now: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._sink = sink
        self._now = now

    async def get(self, alert_id: str) -> MessageRef | None:
        found = await self._store.get_message_ref(self._sink, alert_id)
        if found is None:
            return None
        return MessageRef(found.channel, found.ts, found.single)

    async def put(self, alert_id: str, ref: MessageRef) -> None:
        record = MessageRefRecord(channel=ref.channel, ts=ref.ts, single=ref.single)
        await self._store.put_message_ref(self._sink, alert_id, record, now=self._now())
