"""Alerts and notifications as JSON-safe dicts, and back.

Used by the outbox (a notification is stored as the JSON of this dict) and by the
HTTP API. Pure: no I/O.

Invariants:
- Round trips are exact: `alert_from_dict(alert_to_dict(a)) == a` for every alert, and
  the same for notifications. Floats keep every bit (JSON numbers are written with
  `repr`); the non-finite ones, which JSON cannot spell, travel as the strings "NaN",
  "Infinity" and "-Infinity".
- The dicts hold only str, int, float, bool, None, lists and dicts with str keys:
  `json.dumps(..., allow_nan=False)` accepts them as they are.
- Keys are the dataclass field names (snake_case). Datetimes are ISO 8601 text in UTC
  with a `Z` and microseconds; they decode to timezone-aware datetimes in `UTC`. A naive
  datetime is refused on the way in rather than guessed.
- Decoding is tolerant of what a later version may add (unknown keys are ignored,
  missing optional keys take their defaults) and strict about what it needs: a missing
  or mistyped required value raises `ValueError` naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast, get_args

from relay.domain.alerts import (
    Alert,
    ExecutionFacts,
    FailureCause,
    MutedRoute,
    Notification,
    NotificationGroup,
)
from relay.durations import utc_iso
from relay.vocab import AlertState, NotificationKind, Severity

__all__ = [
    "alert_from_dict",
    "alert_to_dict",
    "notification_from_dict",
    "notification_to_dict",
]

_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# --- encoding -----------------------------------------------------------------------------


def _time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: alerts carry timezone-aware UTC only")
    # Always six digits of fraction: the stored format, whatever the value.
    return utc_iso(value, timespec="microseconds")


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else _time(value)


def _number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _facts_to_dict(facts: ExecutionFacts) -> dict[str, Any]:
    return {
        "id": facts.id,
        "kind": facts.kind,
        "status": facts.status,
        "responder_id": facts.responder_id,
        "agent_id": facts.agent_id,
        "workflow_id": facts.workflow_id,
        "parent_id": facts.parent_id,
        "origin_type": facts.origin_type,
        "credits_used": _number(facts.credits_used),
        "started_at": _time(facts.started_at),
        "ended_at": _opt_time(facts.ended_at),
    }


def _cause_to_dict(cause: FailureCause) -> dict[str, Any]:
    return {
        "step_label": cause.step_label,
        "step_type": cause.step_type,
        "tool_type": cause.tool_type,
        "node_type": cause.node_type,
        "model": cause.model,
        "error_excerpt": cause.error_excerpt,
        "chain": list(cause.chain),
    }


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """The alert as a JSON-safe dict (see the module invariants)."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity,
        "state": alert.state,
        "source": alert.source,
        "summary": alert.summary,
        "description": alert.description,
        "started_at": _time(alert.started_at),
        "labels": dict(alert.labels),
        "execution": None if alert.execution is None else _facts_to_dict(alert.execution),
        "cause": None if alert.cause is None else _cause_to_dict(alert.cause),
        "link": alert.link,
        "group": None if alert.group is None else dict(alert.group),
        "value": None if alert.value is None else _number(alert.value),
        "ended_at": _opt_time(alert.ended_at),
        "renew_by": _opt_time(alert.renew_by),
        "silenced_by": alert.silenced_by,
        "annotations": dict(alert.annotations),
        "muted": [
            {"route": m.route, "sinks": list(m.sinks), "reason": m.reason, "kind": m.kind}
            for m in alert.muted
        ],
    }


def notification_to_dict(notification: Notification) -> dict[str, Any]:
    """The notification, its alert included, as a JSON-safe dict."""
    return {
        "id": notification.id,
        "sink": notification.sink,
        "kind": notification.kind,
        "created_at": _time(notification.created_at),
        "alert": alert_to_dict(notification.alert),
        "group": None if notification.group is None else _group_to_dict(notification.group),
    }


def _group_to_dict(group: NotificationGroup) -> dict[str, Any]:
    return {
        "key": group.key,
        "wait_s": group.wait_s,
        "route": group.route,
        "values": dict(group.values),
    }


# --- decoding -----------------------------------------------------------------------------


class _Fields:
    """Typed reads from one decoded dict; every complaint names the key and the object."""

    def __init__(self, raw: object, what: str) -> None:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{what}: expected an object, got {type(raw).__name__}")
        self._raw: Mapping[str, Any] = raw
        self._what = what

    def _get(self, key: str, *, required: bool) -> Any:
        if key not in self._raw:
            if required:
                raise ValueError(f"{self._what}: missing {key!r}")
            return None
        return self._raw[key]

    def _wrong(self, key: str, expected: str, value: object) -> ValueError:
        return ValueError(f"{self._what}.{key}: expected {expected}, got {value!r}")

    def text(self, key: str) -> str:
        value = self._get(key, required=True)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, required=False)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "a string or null", value)
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self._wrong(key, f"one of {', '.join(allowed)}", value)
        return value

    def time(self, key: str) -> datetime:
        return self._parse_time(key, self.text(key))

    def opt_time(self, key: str) -> datetime | None:
        value = self.opt_text(key)
        return None if value is None else self._parse_time(key, value)

    def _parse_time(self, key: str, value: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise self._wrong(key, "an ISO 8601 datetime", value) from None
        if parsed.tzinfo is None:
            raise self._wrong(key, "a datetime with a timezone", value)
        return parsed.astimezone(UTC)

    def number(self, key: str) -> float:
        value = self._get(key, required=True)
        return self._parse_number(key, value)

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, required=False)
        return None if value is None else self._parse_number(key, value)

    def _parse_number(self, key: str, value: object) -> float:
        if isinstance(value, str) and value in _NON_FINITE:
            return _NON_FINITE[value]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number", value)
        return float(value)

    def opt_labels(self, key: str) -> dict[str, str] | None:
        value = self._get(key, required=False)
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self._wrong(key, "an object of strings", value)
        return dict(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key, required=False)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(key, "a list of strings", value)
        return tuple(value)

    def raw(self, key: str) -> object:
        return self._get(key, required=False)


def _facts_from_dict(raw: object) -> ExecutionFacts:
    f = _Fields(raw, "alert.execution")
    return ExecutionFacts(
        id=f.text("id"),
        kind=f.text("kind"),
        status=f.text("status"),
        responder_id=f.text("responder_id"),
        agent_id=f.opt_text("agent_id"),
        workflow_id=f.opt_text("workflow_id"),
        parent_id=f.opt_text("parent_id"),
        origin_type=f.opt_text("origin_type"),
        credits_used=f.number("credits_used"),
        started_at=f.time("started_at"),
        ended_at=f.opt_time("ended_at"),
    )


def _cause_from_dict(raw: object) -> FailureCause:
    f = _Fields(raw, "alert.cause")
    return FailureCause(
        step_label=f.opt_text("step_label"),
        step_type=f.opt_text("step_type"),
        tool_type=f.opt_text("tool_type"),
        node_type=f.opt_text("node_type"),
        model=f.opt_text("model"),
        error_excerpt=f.opt_text("error_excerpt"),
        chain=f.texts("chain"),
    )


def alert_from_dict(raw: Mapping[str, Any]) -> Alert:
    """The alert `alert_to_dict` made; `ValueError` naming the key when `raw` is malformed."""
    f = _Fields(raw, "alert")
    execution = f.raw("execution")
    cause = f.raw("cause")
    return Alert(
        id=f.text("id"),
        rule=f.text("rule"),
        severity=cast(Severity, f.choice("severity", get_args(Severity))),
        state=cast(AlertState, f.choice("state", get_args(AlertState))),
        source=f.text("source"),
        summary=f.text("summary"),
        description=f.text("description"),
        started_at=f.time("started_at"),
        labels=f.opt_labels("labels") or {},
        execution=None if execution is None else _facts_from_dict(execution),
        cause=None if cause is None else _cause_from_dict(cause),
        link=f.opt_text("link"),
        group=f.opt_labels("group"),
        value=f.opt_number("value"),
        ended_at=f.opt_time("ended_at"),
        renew_by=f.opt_time("renew_by"),
        silenced_by=f.opt_text("silenced_by"),
        annotations=f.opt_labels("annotations") or {},
        muted=_muted_from(f.raw("muted")),
    )


def notification_from_dict(raw: Mapping[str, Any]) -> Notification:
    """The notification `notification_to_dict` made; `ValueError` when `raw` is malformed."""
    f = _Fields(raw, "notification")
    alert = f.raw("alert")
    if alert is None:
        raise ValueError("notification: missing 'alert'")
    if not isinstance(alert, Mapping):
        raise ValueError(f"notification.alert: expected an object, got {alert!r}")
    return Notification(
        id=f.text("id"),
        sink=f.text("sink"),
        kind=cast(NotificationKind, f.choice("kind", get_args(NotificationKind))),
        alert=alert_from_dict(alert),
        created_at=f.time("created_at"),
        group=_group_from_dict(f.raw("group")),
    )


def _group_from_dict(raw: Any) -> NotificationGroup | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"notification.group: expected an object, got {raw!r}")
    f = _Fields(raw, "notification.group")
    wait_s = f.opt_number("wait_s")
    return NotificationGroup(
        key=f.text("key"),
        wait_s=0.0 if wait_s is None else wait_s,
        route=f.text("route"),
        values=f.opt_labels("values") or {},
    )


def _muted_from(raw: object) -> tuple[MutedRoute, ...]:
    """`alert.muted`; absent in alerts stored before routes existed, and `kind` in those
    stored before reminders and resolves were judged by their firing (it was "firing")."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"alert.muted: expected a list, got {raw!r}")
    muted = []
    for index, entry in enumerate(raw):
        f = _Fields(entry, f"alert.muted[{index}]")
        kind = "firing" if f.raw("kind") is None else f.choice("kind", get_args(NotificationKind))
        muted.append(
            MutedRoute(
                route=f.text("route"),
                sinks=f.texts("sinks"),
                reason=f.text("reason"),
                kind=cast(NotificationKind, kind),
            )
        )
    return tuple(muted)
