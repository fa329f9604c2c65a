"""The words every sink uses of a notification: whether it says "resolved", its state
word, the worst severity still firing, its links, its failing step, the colours of
severities, a batch's id. Pure.

Invariants:
- A notification is resolved when it is a resolve or its alert resolved (a digest may
  carry a firing notification of an alert that has resolved since).
- Severities rank critical, warning, info (`SEVERITY_RANK`).
- A link is shown only when it is an http(s) URL without whitespace, at most
  `LINK_MAX_CHARS` (`http_link`): execution text never becomes a `javascript:` link.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from relay.domain.alerts import Alert, FailureCause, Notification
from relay.vocab import RUNBOOK_ANNOTATION, Severity

SEVERITY_RANK: dict[Severity, int] = {"critical": 0, "warning": 1, "info": 2}
SEVERITY_HEX = {"critical": "#D92D20", "warning": "#F79009", "info": "#2E90FA"}
RESOLVED_HEX = "#12B76A"
LINK_MAX_CHARS = 2000


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


def http_link(url: str | None, *, max_chars: int = LINK_MAX_CHARS) -> str | None:
    """`url` when a receiver may show it as a link: http(s), no whitespace, not long."""
    if not url or len(url) > max_chars or not url.startswith(("https://", "http://")):
        return None
    return None if any(c.isspace() for c in url) else url


def alert_links(alert: Alert) -> list[tuple[str, str]]:
    """(label, URL) of the execution (or alert) link and the rule's runbook, the ones
    that are links (`http_link`), in that order."""
    found = []
    if (link := http_link(alert.link)) is not None:
        found.append(("Open execution" if alert.execution else "Open", link))
    if (runbook := http_link(alert.annotations.get(RUNBOOK_ANNOTATION))) is not None:
        found.append(("Runbook", runbook))
    return found


def step_kinds(cause: FailureCause) -> str:
    """`tool-call, http`: what the failing step was (step, tool, node type, model)."""
    return ", ".join(
        k for k in (cause.step_type, cause.tool_type, cause.node_type, cause.model) if k
    )


def step_words(cause: FailureCause | None) -> str | None:
    """`Look up the customer (tool-call, http)`, or None when no step is known."""
    if cause is None or not (cause.step_label or cause.step_type):
        return None
    step = cause.step_label or "unnamed step"
    kinds = step_kinds(cause)
    return f"{step} ({kinds})" if kinds else step


def batch_id(notification_ids: Sequence[str]) -> str:
    """The id of a batch (a webhook's `webhook-id`, a digest mail's `Message-ID`):
    stable for a set of notification ids."""
    digest = hashlib.sha256("\x1f".join(sorted(notification_ids)).encode()).hexdigest()
    return f"msg_batch_{digest[:24]}"


__all__ = [
    "LINK_MAX_CHARS",
    "RESOLVED_HEX",
    "SEVERITY_HEX",
    "SEVERITY_RANK",
    "alert_links",
    "batch_id",
    "burst_title",
    "http_link",
    "is_resolved",
    "state_word",
    "step_kinds",
    "step_words",
    "worst_firing",
]
