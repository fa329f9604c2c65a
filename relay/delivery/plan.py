"""One step's messages, for `relay.delivery.worker.DeliveryWorker`: when the sink has
something to send and what it may claim then (`ready_at`), the claimed notifications
cut into messages (`relay.domain.grouping.plan_messages`), what the step may not send
put back, and the members of new group messages fixed before they go.

Invariants:
- A message never mixes route groups, nor grouped notifications with ungrouped ones; a
  group message already attempted is sent again with exactly its members.
- At most `messages` messages are kept; the others are due again at once (a claim
  completes the groups it touches, so it may hold more than a step sends).
- A group message is stamped (`Outbox.stamp_messages`) before its first attempt: a
  crash after the request leaves its members fixed, and a grouped notification that
  arrives meanwhile goes in the next message. Every group message this returns has
  its stamped id on each item (`OutboxItem.message_id`), which the sink sends.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from relay.delivery.types import Outbox
from relay.domain.grouping import (
    claims_grouped_only,
    group_message_id,
    plan_messages,
    sink_ready_at,
)
from relay.store.records import OutboxItem

NOT_THIS_STEP = "not attempted yet: more messages were due than one step sends"


def group_key(item: OutboxItem) -> str | None:
    group = item.notification.group
    return None if group is None else group.key


async def ready_at(
    outbox: Outbox, sink: str, *, group_wait_s: float, now: datetime
) -> tuple[datetime | None, bool]:
    """When `sink` has something to send (None: nothing pending), and whether a step at
    `now` may claim route groups' notifications only: a group's message is due but the
    ungrouped ones have not waited the sink's `group_wait_s` yet."""
    due = await outbox.next_due_at(sink)
    if due is None or group_wait_s <= 0:
        return due, False
    ungrouped_due = await outbox.next_due_at(sink, grouped=False)
    ready = sink_ready_at(
        ungrouped_due_at=ungrouped_due,
        grouped_due_at=await outbox.next_due_at(sink, grouped=True),
        group_wait_s=group_wait_s,
    )
    only = claims_grouped_only(now=now, ungrouped_due_at=ungrouped_due, group_wait_s=group_wait_s)
    return ready, only


async def step_messages(
    outbox: Outbox,
    sink: str,
    items: list[OutboxItem],
    *,
    max_batch: int,
    messages: int,
    now: datetime,
) -> list[list[OutboxItem]]:
    """The messages this step sends (see the module invariants)."""
    planned = plan_messages(
        items, max_batch=max_batch, group_of=group_key, message_of=lambda i: i.message_id
    )
    kept, later = planned[:messages], planned[messages:]
    for message in later:
        for item in message:
            await outbox.mark_retry(
                sink,
                item.notification.id,
                next_attempt_at=now,
                error=item.last_error or NOT_THIS_STEP,
            )
    fresh: dict[str, list[str]] = {}
    stamped: list[list[OutboxItem]] = []
    for message in kept:
        key = group_key(message[0])
        if key is None or message[0].message_id is not None:
            stamped.append(message)
            continue
        ids = [item.notification.id for item in message]
        message_id = group_message_id(key, ids)
        fresh[message_id] = ids
        stamped.append([replace(item, message_id=message_id) for item in message])
    if fresh:
        await outbox.stamp_messages(sink, fresh, now=now)
    return stamped


__all__ = ["NOT_THIS_STEP", "group_key", "ready_at", "step_messages"]
