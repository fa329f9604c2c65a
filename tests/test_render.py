"""Webhook JSON, Alertmanager JSON and console lines, rendered from alerts."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta

import pytest

from relay.durations import format_credits, format_span_s
from relay.sinks.alertmanager import alertmanager_alert
from relay.sinks.console import console_line
from relay.sinks.webhook import batch_id, webhook_batch_body, webhook_body
from tests.delivery_kit import T0, make_alert, make_notification


def test_webhook_body_documented_shape() -> None:
    alert = make_alert(execution_id="exec-42")
    body = webhook_body(make_notification(alert))
    assert set(body) == {
        "version",
        "id",
        "type",
        "timestamp",
        "alert",
        "execution",
        "cause",
        "links",
    }
    assert body["version"] == "1"
    assert body["id"] == f"msg_{alert.id.removeprefix('alert_')}_firing"
    assert body["type"] == "alert.firing"
    assert body["timestamp"] == "2026-03-02T09:00:00Z"
    assert body["alert"] == {
        "id": alert.id,
        "rule": "execution-failed",
        "severity": "critical",
        "state": "firing",
        "source": "prod",
        "summary": "Agent support-bot failed (execution exec-42)",
        "description": "The execution failed at step 'Look up the customer' after 42s.",
        "labels": {
            "rule": "execution-failed",
            "severity": "critical",
            "source": "prod",
            "type": "agent",
        },
        "annotations": {},
        "started_at": "2026-03-02T09:00:00Z",
        "ended_at": None,
        "group": None,
        "value": None,
    }
    assert body["execution"] == {
        "id": "exec-42",
        "type": "agent",
        "status": "failed",
        "responder_id": "resp-1",
        "agent_id": "agent-support-bot",
        "workflow_id": None,
        "parent_id": None,
        "origin_type": "api",
        "credits_used": 12.5,
        "started_at": "2026-03-02T08:59:18Z",
        "ended_at": "2026-03-02T09:00:00Z",
        "duration_s": 42.0,
    }
    assert body["cause"] == {
        "step_label": "Look up the customer",
        "step_type": "tool-call",
        "tool_type": "http",
        "node_type": None,
        "model": None,
        "error_excerpt": "Tool 'crm.lookup' failed: HTTP 502 from upstream",
        "chain": ["exec-42"],
    }
    assert body["links"] == {"execution": "https://app.zaia.example/executions/exec-42"}
    json.dumps(body, allow_nan=False)  # JSON-safe as it is


def test_webhook_body_windowed_and_resolved() -> None:
    alert = make_alert(rule="agent-failure-rate", windowed=True, state="resolved")
    body = webhook_body(make_notification(alert, kind="resolved"))
    assert body["type"] == "alert.resolved"
    assert body["execution"] is None
    assert body["cause"] is None
    assert body["links"] == {}
    assert body["alert"]["state"] == "resolved"
    assert body["alert"]["ended_at"] == "2026-03-02T09:20:00Z"
    assert body["alert"]["group"] == {"responder_id": alert.group["responder_id"]}  # type: ignore[index]
    assert body["alert"]["value"] == 0.4


def test_webhook_body_non_finite_numbers_become_null() -> None:
    alert = make_alert()
    assert alert.execution is not None
    alert = replace(
        alert,
        value=math.nan,
        execution=replace(alert.execution, credits_used=math.inf),
    )
    body = webhook_body(make_notification(alert))
    assert body["alert"]["value"] is None
    assert body["execution"]["credits_used"] is None
    json.dumps(body, allow_nan=False)


def test_webhook_body_is_the_same_on_every_render() -> None:
    n = make_notification()
    assert json.dumps(webhook_body(n)) == json.dumps(webhook_body(n))


def test_batch_id_is_stable_and_order_free() -> None:
    assert batch_id(["b", "a", "c"]) == batch_id(["c", "b", "a"])
    assert batch_id(["a", "b"]) != batch_id(["a", "b", "c"])
    assert batch_id(["a"]).startswith("msg_batch_")
    items = [make_notification(created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    body = webhook_batch_body(items)
    assert body["type"] == "alert.batch"
    assert body["id"] == batch_id([n.id for n in items])
    assert body["timestamp"] == "2026-03-02T09:00:02Z"
    assert [b["id"] for b in body["notifications"]] == [n.id for n in items]
    with pytest.raises(ValueError, match="at least one"):
        webhook_batch_body([])


def test_alertmanager_alert_firing() -> None:
    alert = make_alert(execution_id="exec-7")
    body = alertmanager_alert(
        make_notification(alert), extra_labels={"team": "ai", "alertname": "overridden?"}
    )
    assert body["labels"] == {
        "team": "ai",
        "alertname": "execution-failed",  # the sink's labels never replace ours
        "rule": "execution-failed",
        "severity": "critical",
        "source": "prod",
        "type": "agent",
        "alert_id": alert.id,
    }
    assert body["annotations"]["summary"] == alert.summary
    assert body["annotations"]["execution_id"] == "exec-7"
    assert body["annotations"]["error"].startswith("Tool 'crm.lookup'")
    assert body["startsAt"] == "2026-03-02T09:00:00Z"
    assert "endsAt" not in body
    assert body["generatorURL"] == "https://app.zaia.example/executions/exec-7"


def test_alertmanager_alert_resolved_and_test() -> None:
    alert = make_alert(windowed=True, state="resolved")
    body = alertmanager_alert(make_notification(alert, kind="resolved"))
    assert body["endsAt"] == "2026-03-02T09:20:00Z"
    test = alertmanager_alert(make_notification(make_alert(link=None), kind="test"))
    assert test["endsAt"] == "2026-03-02T09:05:00Z"
    assert "generatorURL" not in test


def test_alertmanager_drops_empty_label_values() -> None:
    alert = replace(make_alert(), labels={"rule": "r", "workflow_id": ""})
    assert "workflow_id" not in alertmanager_alert(make_notification(alert))["labels"]


def test_console_line_plain() -> None:
    alert = make_alert(execution_id="exec-9", summary="Agent x failed\nbadly")
    line = console_line(make_notification(alert), color=False)
    assert line == (
        "09:00:00Z CRITICAL firing   execution-failed [prod] Agent x failed badly"
        "  https://app.zaia.example/executions/exec-9"
    )
    assert "\x1b" not in line
    assert "\n" not in line


def test_console_line_colours() -> None:
    firing = console_line(make_notification(make_alert(severity="warning")), color=True)
    assert "\x1b[33m" in firing  # warning: yellow
    alert = make_alert(windowed=True, state="resolved")
    resolved = console_line(make_notification(alert, kind="resolved"), color=True)
    assert "\x1b[32m" in resolved
    assert "resolved" in resolved
    assert "\n" not in resolved


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0, "0s"),
        (42.4, "42s"),
        (65, "1m 5s"),
        (3600, "1h"),
        (3725, "1h 2m"),
        (90061, "1d 1h"),
    ],
)
def test_format_span_s(seconds: float | None, text: str) -> None:
    assert format_span_s(seconds) == text


@pytest.mark.parametrize(
    ("credits", "text"), [(12.5, "12.5"), (1000, "1,000"), (0.125, "0.12"), (math.nan, "unknown")]
)
def test_format_credits(credits: float, text: str) -> None:
    assert format_credits(credits) == text


def test_a_firing_windowed_alert_stays_firing_in_alertmanager_until_its_reminder() -> None:
    from datetime import UTC, datetime, timedelta

    from relay.domain.alerts import Alert, Notification
    from relay.sinks.alertmanager import alertmanager_alert

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    alert = Alert(
        id="alert_1",
        rule="agent-failure-rate",
        severity="critical",
        state="firing",
        source="prod",
        summary="s",
        description="d",
        started_at=now,
        group={"responder_id": "r1"},
        renew_by=now + timedelta(hours=4),
    )
    body = alertmanager_alert(Notification.about(alert, sink="am", kind="firing", created_at=now))
    ends = datetime.fromisoformat(body["endsAt"].replace("Z", "+00:00"))
    assert now + timedelta(hours=4) < ends <= now + timedelta(hours=5)
