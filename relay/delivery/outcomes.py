"""What a worker does with the outcome of a message, apart from the outbox: which claimed
notifications a silence now matches, and the log line of each outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

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
