"""The words every chat-like sink uses of a notification: whether it says "resolved",
its state word, the worst severity still firing. Pure.

Invariants:
- A notification is resolved when it is a resolve or its alert resolved (a digest may
  carry a firing notification of an alert that has resolved since).
- Severities rank critical, warning, info (`SEVERITY_RANK`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from relay.domain.alerts import Notification
from relay.vocab import Severity

SEVERITY_RANK: dict[Severity, int] = {"critical": 0, "warning": 1, "info": 2}


def is_resolved(notification: Notification) -> bool:
    return notification.kind == "resolved" or notification.alert.state == "resolved"


def state_word(notification: Notification) -> str:
    """`TEST`, `RESOLVED`, `REMINDER` or `FIRING`."""
    if notification.kind == "test":
        return "TEST"
    if is_resolved(notification):
        return "RESOLVED"
    return "REMINDER" if notification.kind == "reminder" else "FIRING"


def worst_firing(notifications: Sequence[Notification]) -> Severity | None:
    """The worst severity among those not resolved; None when all are."""
    firing = [n.alert.severity for n in notifications if not is_resolved(n)]
    if not firing:
        return None
    return min(firing, key=SEVERITY_RANK.__getitem__)


def burst_title(notifications: Sequence[Notification]) -> str:
    """`5 alerts: 3 critical, 1 warning, 1 resolved`: what a digest of a burst holds."""
    counts = Counter(n.alert.severity for n in notifications if not is_resolved(n))
    resolved = sum(1 for n in notifications if is_resolved(n))
    parts = [f"{counts[s]} {s}" for s in sorted(counts, key=SEVERITY_RANK.__getitem__)]
    if resolved:
        parts.append(f"{resolved} resolved")
    return f"{len(notifications)} alerts: {', '.join(parts)}"


__all__ = ["SEVERITY_RANK", "burst_title", "is_resolved", "state_word", "worst_firing"]
