"""relay.domain.codec: alerts and notifications to JSON-safe dicts and back, exactly."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.alerts import (
    Alert,
    ExecutionFacts,
    FailureCause,
    MutedRoute,
    Notification,
    execution_alert_id,
    group_alert_id,
)
from relay.domain.codec import (
    alert_from_dict,
    alert_to_dict,
    notification_from_dict,
    notification_to_dict,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def full_alert() -> Alert:
    """An alert with every field set to something other than its default."""
    plus_two = timezone(timedelta(hours=2))
    return Alert(
        id=execution_alert_id(rule="execution-failed", source="prod", execution_id="exec-1"),
        rule="execution-failed",
        severity="critical",
        state="resolved",
        source="prod",
        summary="Agent agent-1 failed: Tool timed out",
        description="line one\nline two — ünïcødé ✓",
        started_at=T0,
        labels={"rule": "execution-failed", "severity": "critical", "type": "agent"},
        execution=ExecutionFacts(
            id="exec-1",
            kind="agent",
            status="failed",
            responder_id="resp-1",
            agent_id="agent-1",
            workflow_id="wf-1",
            parent_id="exec-0",
            origin_type="api",
            credits_used=0.1 + 0.2,
            started_at=datetime(2026, 3, 1, 13, 59, 0, 1, tzinfo=plus_two),
            ended_at=T0 + timedelta(microseconds=1),
        ),
        cause=FailureCause(
            step_label="Search the web",
            step_type="tool-call",
            tool_type="http",
            node_type="agent",
            model="gpt-x",
            error_excerpt='{"error":"boom"}',
            chain=("exec-1", "exec-2"),
        ),
        link="https://app.example/executions/exec-1",
        group={"responder_id": "resp-1"},
        value=1 / 3,
        ended_at=T0 + timedelta(minutes=5),
        renew_by=T0 + timedelta(hours=4, microseconds=7),
        silenced_by="sil_123",
        annotations={"runbook_url": "https://wiki.example/runbook", "team": "payments"},
        muted=(
            MutedRoute(route="payments-page", sinks=("pagerduty",), reason="in weekends"),
            MutedRoute(
                route="payments-page",
                sinks=("pagerduty",),
                reason="firing held back in weekends",
                kind="reminder",
            ),
        ),
    )


def sparse_alert() -> Alert:
    return Alert(
        id=group_alert_id(rule="credit-burn", source="prod", group_key="", episode=1),
        rule="credit-burn",
        severity="info",
        state="firing",
        source="prod",
        summary="s",
        description="",
        started_at=T0,
    )


def test_every_field_of_alert_is_encoded() -> None:
    # A field added to Alert (or its parts) must be added to the codec too, or it would
    # be silently lost by every round trip through the outbox.
    alert = full_alert()
    encoded = alert_to_dict(alert)
    assert set(encoded) == {f.name for f in dataclasses.fields(Alert)}
    assert alert.execution is not None
    assert alert.cause is not None
    assert set(encoded["execution"]) == {f.name for f in dataclasses.fields(ExecutionFacts)}
    assert set(encoded["cause"]) == {f.name for f in dataclasses.fields(FailureCause)}
    for field in dataclasses.fields(Alert):
        if field.default is not dataclasses.MISSING or field.default_factory is not (
            dataclasses.MISSING
        ):
            assert getattr(alert, field.name) != field.default, field.name


@pytest.mark.parametrize("alert", [full_alert(), sparse_alert()], ids=["full", "sparse"])
def test_alert_round_trip_is_exact_and_json_safe(alert: Alert) -> None:
    encoded = alert_to_dict(alert)
    text = json.dumps(encoded, allow_nan=False)
    decoded = alert_from_dict(json.loads(text))
    assert decoded == alert
    for value in (decoded.started_at, decoded.ended_at):
        assert value is None or value.tzinfo is UTC


def test_datetimes_are_utc_text_with_z() -> None:
    encoded = alert_to_dict(full_alert())
    assert encoded["started_at"] == "2026-03-01T12:00:00.123456Z"
    assert encoded["execution"]["started_at"] == "2026-03-01T11:59:00.000001Z"
    decoded = alert_from_dict(encoded)
    assert decoded.execution is not None
    assert decoded.execution.started_at.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    naive = dataclasses.replace(sparse_alert(), started_at=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        alert_to_dict(naive)
    encoded = alert_to_dict(sparse_alert()) | {"started_at": "2026-03-01T12:00:00"}
    with pytest.raises(ValueError, match=r"alert\.started_at: expected a datetime with a timezone"):
        alert_from_dict(encoded)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0.0, -0.0, 5e-324, 1e308])
def test_any_float_survives(value: float) -> None:
    alert = dataclasses.replace(sparse_alert(), value=value)
    text = json.dumps(alert_to_dict(alert), allow_nan=False)
    decoded = alert_from_dict(json.loads(text))
    assert decoded.value is not None
    if math.isnan(value):
        assert math.isnan(decoded.value)
    else:
        assert decoded.value == value
        assert math.copysign(1, decoded.value) == math.copysign(1, value)


def test_notification_round_trip() -> None:
    for kind, sequence in (("firing", 0), ("reminder", 3), ("resolved", 0), ("test", 0)):
        notification = Notification.about(
            full_alert(),
            sink="oncall",
            kind=kind,  # type: ignore[arg-type]
            created_at=T0,
            sequence=sequence,
        )
        encoded = notification_to_dict(notification)
        assert notification_from_dict(json.loads(json.dumps(encoded))) == notification
    assert encoded["alert"] == alert_to_dict(full_alert())


def test_decoding_tolerates_unknown_and_missing_optional_keys() -> None:
    encoded = alert_to_dict(sparse_alert())
    optional_keys = ("labels", "execution", "cause", "link", "group", "value", "ended_at")
    for optional in (*optional_keys, "annotations"):
        del encoded[optional]
    encoded["added_by_a_later_version"] = {"anything": [1, 2]}
    assert alert_from_dict(encoded) == sparse_alert()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, r"alert\.id: expected a string"),
        ({"severity": "fatal"}, r"alert\.severity: expected one of critical, warning, info"),
        ({"state": 1}, r"alert\.state: expected a string"),
        ({"started_at": "yesterday"}, r"alert\.started_at: expected an ISO 8601 datetime"),
        ({"labels": {"rule": 1}}, r"alert\.labels: expected an object of strings"),
        ({"annotations": ["x"]}, r"alert\.annotations: expected an object of strings"),
        ({"value": True}, r"alert\.value: expected a number"),
        ({"value": "many"}, r"alert\.value: expected a number"),
        ({"execution": []}, r"alert\.execution: expected an object"),
        ({"execution": {"id": "x"}}, r"alert\.execution: missing 'kind'"),
        ({"cause": {"chain": "exec-1"}}, r"alert\.cause\.chain: expected a list of strings"),
        (
            {"muted": [{"route": "r", "sinks": [], "reason": "in x", "kind": "later"}]},
            r"alert\.muted\[0\]\.kind: expected one of firing, reminder",
        ),
    ],
)
def test_malformed_alerts_name_the_key(change: dict[str, Any], message: str) -> None:
    encoded = alert_to_dict(sparse_alert()) | change
    with pytest.raises(ValueError, match=message):
        alert_from_dict(encoded)


def test_malformed_notifications() -> None:
    good = notification_to_dict(
        Notification.about(sparse_alert(), sink="s", kind="firing", created_at=T0)
    )
    with pytest.raises(ValueError, match="notification: missing 'alert'"):
        notification_from_dict({k: v for k, v in good.items() if k != "alert"})
    with pytest.raises(ValueError, match=r"notification\.kind: expected one of"):
        notification_from_dict(good | {"kind": "page"})
    with pytest.raises(ValueError, match="alert: missing 'summary'"):
        notification_from_dict(
            good
            | {
                "alert": {
                    "id": "a",
                    "rule": "r",
                    "severity": "info",
                    "state": "firing",
                    "source": "s",
                }
            }
        )
    with pytest.raises(ValueError, match="notification: expected an object"):
        notification_from_dict([])  # type: ignore[arg-type]


_text = st.text(max_size=20)
_opt_text = st.none() | _text
_times = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11, minutes=-30))]),
)
_labels = st.dictionaries(_text, _text, max_size=4)
_facts = st.builds(
    ExecutionFacts,
    id=_text,
    kind=st.sampled_from(["agent", "squad", "workflow"]),
    status=_text,
    responder_id=_text,
    agent_id=_opt_text,
    workflow_id=_opt_text,
    parent_id=_opt_text,
    origin_type=_opt_text,
    credits_used=st.floats(allow_nan=False),
    started_at=_times,
    ended_at=st.none() | _times,
)
_causes = st.builds(
    FailureCause,
    step_label=_opt_text,
    step_type=_opt_text,
    tool_type=_opt_text,
    node_type=_opt_text,
    model=_opt_text,
    error_excerpt=_opt_text,
    chain=st.lists(_text, max_size=3).map(tuple),
)
_alerts = st.builds(
    Alert,
    id=_text,
    rule=_text,
    severity=st.sampled_from(["critical", "warning", "info"]),
    state=st.sampled_from(["firing", "resolved"]),
    source=_text,
    summary=_text,
    description=_text,
    started_at=_times,
    labels=_labels,
    execution=st.none() | _facts,
    cause=st.none() | _causes,
    link=_opt_text,
    group=st.none() | _labels,
    value=st.none() | st.floats(allow_nan=False),
    ended_at=st.none() | _times,
    renew_by=st.none() | _times,
    silenced_by=_opt_text,
    annotations=_labels,
)


@given(alert=_alerts, created_at=_times, sink=_text)
def test_round_trip_property(alert: Alert, created_at: datetime, sink: str) -> None:
    notification = Notification(
        id=f"msg_{alert.id}", sink=sink, kind="firing", alert=alert, created_at=created_at
    )
    text = json.dumps(notification_to_dict(notification), allow_nan=False)
    assert notification_from_dict(json.loads(text)) == notification


def test_a_body_stored_before_annotations_existed_still_decodes() -> None:
    # Outbox rows written by an earlier version carry no "annotations" key.
    encoded = alert_to_dict(full_alert())
    del encoded["annotations"]
    decoded = alert_from_dict(json.loads(json.dumps(encoded)))
    assert decoded.annotations == {}
    assert decoded == dataclasses.replace(full_alert(), annotations={})


def test_a_mute_stored_before_it_had_a_kind_was_of_the_firing() -> None:
    # Alerts stored before reminders and resolves followed their firing: no "kind".
    encoded = alert_to_dict(full_alert())
    for entry in encoded["muted"]:
        del entry["kind"]
    decoded = alert_from_dict(json.loads(json.dumps(encoded)))
    assert [m.kind for m in decoded.muted] == ["firing", "firing"]
