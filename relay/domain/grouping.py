"""Route groups on their way out: when a grouped notification is due, how the due ones
are cut into messages, what a group's message is called and what it says.

Invariants:
- Pure: times come in as arguments (`now`), the store supplies the facts of a group
  (`GroupFacts`) and applies the decision; nothing here reads a clock or does I/O.
- A grouped notification joins its group's message that no attempt has started yet
  (same due time); else it waits `wait_s`, and never goes out sooner than `wait_s`
  after the group's last message first went out: an alert arriving just after a
  message joins the next one instead of making a new burst.
- A message holds one group only, and never grouped notifications with ungrouped ones.
  A group's message carries at most `GROUP_MESSAGE_MAX` notifications whatever the
  sink's `max_batch` (the rest go in the next message); a message already attempted
  (stamped with its id) keeps exactly its members.
- A group message's id is derived from the group key and the sorted ids of its
  members: the same set gets the same id on every attempt, whatever their order. It
  is stamped on its members before the first attempt (`OutboxItem.message_id`), and
  every attempt after that sends the stamped id (the `webhook-id`), never one derived
  again from the members present.
- A stamped message only ever loses members, never gains or swaps them: one settled
  without being sent (silenced by a silence added since, or past `max_age`) is left
  out of the retry, which keeps the stamped id and says which notifications it covers
  (a webhook body's `notification_ids`). A receiver that already took the message
  under that id has every member it still carries; one that did not gets the rest.
- Its words name the count and the first `GROUP_SHOWN` alerts; the rest are counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from relay.domain.alerts import Notification, NotificationGroup
from relay.domain.delivery import batches, digest_ready_at
from relay.vocab import Severity

# One group message carries at most this many notifications: a receiver's request stays
# small, and a huge burst becomes a few messages rather than one unbounded one.
GROUP_MESSAGE_MAX = 100
# Alerts a group message names one by one; the others are counted ("and 7 more").
GROUP_SHOWN = 5

_SEVERITY_ORDER: dict[Severity, int] = {"critical": 0, "warning": 1, "info": 2}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class GroupFacts:
    """What the outbox knows of one group of one sink when a notification of it arrives."""

    # The due time of the group's pending message no attempt has started yet, if any.
    pending_due_at: datetime | None = None
    # When the group's latest message was first attempted, if it ever had one.
    last_message_at: datetime | None = None


def group_due_at(*, now: datetime, wait_s: float, facts: GroupFacts) -> datetime:
    """When a notification of the group arriving at `now` is due (module invariants)."""
    if facts.pending_due_at is not None:
        return facts.pending_due_at
    wait = timedelta(seconds=max(0.0, wait_s))
    last = facts.last_message_at
    if last is not None and now - last < wait:
        return last + wait
    return now + wait


def sink_ready_at(
    *, ungrouped_due_at: datetime | None, grouped_due_at: datetime | None, group_wait_s: float
) -> datetime | None:
    """When a sink with a digest wait (`group_wait_s`) has something to send: its oldest
    due ungrouped notification after that wait, or its first route group's message,
    whose due time already holds its route's wait (the sink's is not added to it)."""
    ready = [] if grouped_due_at is None else [grouped_due_at]
    if ungrouped_due_at is not None:
        ready.append(digest_ready_at(ungrouped_due_at, group_wait_s=group_wait_s))
    return min(ready, default=None)


def claims_grouped_only(
    *, now: datetime, ungrouped_due_at: datetime | None, group_wait_s: float
) -> bool:
    """Whether a sink that is ready at `now` (`sink_ready_at`) may claim route groups'
    notifications only: its ungrouped ones have not yet waited its `group_wait_s`, so a
    group's message being due must not take them early."""
    if ungrouped_due_at is None or group_wait_s <= 0:
        return False
    return digest_ready_at(ungrouped_due_at, group_wait_s=group_wait_s) > now


def group_message_id(group_key: str, notification_ids: Sequence[str]) -> str:
    """The `webhook-id` (and stamped message id) of a group's message of these members."""
    parts = [group_key, *sorted(notification_ids)]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"msg_group_{digest[:24]}"


def plan_messages(
    items: Sequence[_T],
    *,
    max_batch: int,
    group_of: Callable[[_T], str | None],
    message_of: Callable[[_T], str | None],
) -> list[list[_T]]:
    """`items` (in due order) cut into messages: ungrouped ones in batches of
    `max_batch`; each group's not yet attempted ones in messages of at most
    `GROUP_MESSAGE_MAX`; each message already attempted (`message_of`) whole. Messages
    come in the order of their first item."""
    buckets: dict[Hashable, list[_T]] = {}
    for item in items:
        group = group_of(item)
        message = None if group is None else message_of(item)
        key: Hashable = None if group is None else (group, message)
        buckets.setdefault(key, []).append(item)
    planned: list[list[_T]] = []
    for key, bucket in buckets.items():
        if key is None:
            size = max_batch
        elif isinstance(key, tuple) and key[1] is not None:
            size = len(bucket)  # its members were fixed at its first attempt
        else:
            size = GROUP_MESSAGE_MAX
        planned += batches(bucket, max_batch=size)
    first_seen = {id(item): n for n, item in enumerate(items)}
    planned.sort(key=lambda message: first_seen[id(message[0])])
    return planned


# --- words ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupDigest:
    """What a group's message says: a title, the first notifications, how many more."""

    title: str  # "5 alerts: execution-failed for Sales Qualifier"
    shown: tuple[Notification, ...]
    hidden: int
    group: NotificationGroup
    severity: Severity  # the worst of the message's alerts

    @property
    def count(self) -> int:
        return len(self.shown) + self.hidden

    @property
    def more(self) -> str | None:
        """ "and 7 more", or None when every alert is shown."""
        return f"and {self.hidden} more" if self.hidden else None


def message_group(notifications: Sequence[Notification]) -> NotificationGroup | None:
    """The group of a message (None: ungrouped); `ValueError` if it mixes groups."""
    if not notifications:
        raise ValueError("a message needs at least one notification")
    keys = {None if n.group is None else n.group.key for n in notifications}
    if len(keys) > 1:
        raise ValueError(f"a message holds one group only, got {len(keys)}")
    return notifications[0].group


def _value_words(group: NotificationGroup, labels: Mapping[str, str]) -> list[str]:
    """The group's values as people say them: a name label when the alerts carry one
    (`responder` for `responder_id`), else `name=value`."""
    words = []
    for name, value in sorted(group.values.items()):
        named = labels.get(name.removesuffix("_id")) if name.endswith("_id") else None
        words.append(named or f"{name}={value}")
    return words


def group_digest(notifications: Sequence[Notification], *, shown: int = GROUP_SHOWN) -> GroupDigest:
    """The words of a group's message (`ValueError` when it is not one group's)."""
    group = message_group(notifications)
    if group is None:
        raise ValueError("an ungrouped message has no group digest")
    count = len(notifications)
    rules = list(dict.fromkeys(n.alert.rule for n in notifications))
    title = f"{count} alert{'s' if count != 1 else ''}: {', '.join(rules)}"
    values = _value_words(group, notifications[0].alert.labels)
    if values:
        title += f" for {', '.join(values)}"
    first = tuple(notifications[:shown])
    worst = min((n.alert.severity for n in notifications), key=_SEVERITY_ORDER.__getitem__)
    return GroupDigest(
        title=title, shown=first, hidden=count - len(first), group=group, severity=worst
    )


__all__ = [
    "GROUP_MESSAGE_MAX",
    "GROUP_SHOWN",
    "GroupDigest",
    "GroupFacts",
    "claims_grouped_only",
    "group_digest",
    "group_due_at",
    "group_message_id",
    "message_group",
    "plan_messages",
    "sink_ready_at",
]
