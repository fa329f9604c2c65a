"""What a worker does with the outcome of a message, apart from the outbox: which claimed
notifications a silence now matches, which are reminders of alerts acknowledged since
they were queued, and the log line of each outcome."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import structlog

from relay.delivery.types import ActiveSilences, Outbox
from relay.domain.silences import Silence, matching_silence
from relay.durations import utc_iso
from relay.store.records import OutboxItem
from relay.vocab import NotificationOutcome

log = structlog.get_logger("relay.delivery")


def split_silenced(
    items: Sequence[OutboxItem], active: Sequence[Silence], now: datetime
) -> tuple[list[OutboxItem], dict[str, list[OutboxItem]]]:
    """The items to send, and those a silence matches by silence id. Test alerts are
    never silenced."""
    keep: list[OutboxItem] = []
    muted: dict[str, list[OutboxItem]] = {}
    for item in items:
        notification = item.notification
        silence = (
            None
            if notification.kind == "test"
            else matching_silence(notification.alert, active, now)
        )
        if silence is None:
            keep.append(item)
        else:
            muted.setdefault(silence.id, []).append(item)
    return keep, muted


def reminders_of(items: Sequence[OutboxItem]) -> list[str]:
    """The alert ids of the reminders among `items` (what an acknowledgement stops)."""
    return [i.notification.alert.id for i in items if i.notification.kind == "reminder"]


def split_acknowledged(
    items: Sequence[OutboxItem], acknowledged: Collection[str]
) -> tuple[list[OutboxItem], list[OutboxItem]]:
    """The items to send, and the reminders of `acknowledged` alerts: an acknowledgement
    means no more reminders, even one already queued. Firing and resolved
    notifications are still sent."""
    keep: list[OutboxItem] = []
    dropped: list[OutboxItem] = []
    for item in items:
        notification = item.notification
        stopped = notification.kind == "reminder" and notification.alert.id in acknowledged
        (dropped if stopped else keep).append(item)
    return keep, dropped


async def settle_unwanted(
    outbox: Outbox,
    sink: str,
    items: list[OutboxItem],
    *,
    silences: ActiveSilences | None,
    now: datetime,
) -> tuple[list[OutboxItem], list[tuple[list[OutboxItem], str]]]:
    """Settle as silenced, without sending, what a silence now matches (one added
    while these waited: a digest, a retry, a sink outage) and the reminders of alerts
    acknowledged meanwhile. The items to send, and each settled batch with its reason.
    Test alerts are never silenced."""
    settled: list[tuple[list[OutboxItem], str]] = []

    async def settle(batch: list[OutboxItem], reason: str) -> None:
        ids = [i.notification.id for i in batch]
        await outbox.mark_silenced(sink, ids, reason=reason, now=now)
        settled.append((batch, reason))

    active = await silences(now) if silences is not None else ()
    if active:
        items, muted = split_silenced(items, active, now)
        for silence_id, silenced in muted.items():
            await settle(silenced, f"silenced by {silence_id}")
            log.info("delivery.silenced", sink=sink, silence=silence_id, count=len(silenced))
    reminded = reminders_of(items)
    if reminded:
        items, stopped = split_acknowledged(items, await outbox.acknowledged_among(reminded))
        if stopped:
            await settle(stopped, "acknowledged: no more reminders")
            log.info("delivery.acknowledged", sink=sink, count=len(stopped))
    return items, settled


def log_outcome(
    sink: str,
    outcome: NotificationOutcome,
    items: Sequence[OutboxItem],
    *,
    duration_s: float,
    error: str | None,
    paused_until: datetime | None,
) -> None:
    fields = {"sink": sink, "count": len(items), "duration_ms": round(duration_s * 1000, 1)}
    ids = [item.notification.id for item in items[:5]]
    if outcome == "delivered":
        log.debug("delivery.delivered", **fields)
    elif outcome == "retry":
        log.warning(
            "delivery.retry", **fields, error=error, paused_until=utc_iso(paused_until), ids=ids
        )
    elif outcome == "dead":
        log.error("delivery.dead", **fields, error=error, ids=ids)
