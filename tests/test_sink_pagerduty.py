"""The PagerDuty sink against a loopback Events API v2 that validates every event the
way PagerDuty documents it (`tests.vendor_kit.FakePagerDuty`): triggers with the
details an on-call person needs, one incident an alert (reminders fold into it, a
resolve closes it), a route group as one event an alert, and PagerDuty's answers
classified (202 delivered, 400 dead with its errors kept, 429/5xx retried)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from relay.domain.alerts import Notification
from relay.errors import SinkError
from relay.settings import PagerDutySinkSettings
from relay.sinks.pagerduty import PagerDutySink, event_action, pagerduty_event
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, make_alert, make_notification
from tests.test_grouping_sinks import deliver_group
from tests.vendor_kit import ROUTING_KEY, FakePagerDuty, pagerduty_errors

backend, store = store_backends.backend, store_backends.store
RUNBOOK = "https://runbooks.example/execution-failed"


def pd_settings(api_url: str, **extra: Any) -> PagerDutySinkSettings:
    return PagerDutySinkSettings.model_validate(
        {"type": "pagerduty", "routing_key": ROUTING_KEY, "api_url": api_url, **extra}
    )


async def send(pd: FakePagerDuty, notifications: list[Notification]) -> None:
    sink = PagerDutySink("pager", pd_settings(pd.api_url))
    try:
        await sink.send(notifications)
    finally:
        await sink.aclose()


def firing(**alert: Any) -> Notification:
    base = make_alert(**alert)
    base = dataclasses.replace(
        base,
        labels={**base.labels, "responder": "Support Bot", "team": "payments"},
        annotations={"runbook_url": RUNBOOK, "owner": "ops"},
    )
    return make_notification(base, sink="pager")


async def test_a_firing_alert_triggers_with_what_on_call_needs() -> None:
    n = firing()
    async with FakePagerDuty() as pd:
        await send(pd, [n])
    (event,) = pd.events
    assert pd.refused == []
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == n.alert.id
    assert event["routing_key"] == ROUTING_KEY
    payload = event["payload"]
    assert payload["summary"] == n.alert.summary
    assert payload["source"] == "prod/Support Bot"
    assert payload["severity"] == "critical"
    assert payload["timestamp"] == "2026-03-02T09:00:00Z"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "Support Bot",
        "prod",
        "execution-failed",
    )
    details = payload["custom_details"]
    facts = n.alert.execution
    assert facts is not None
    assert details["execution_id"] == facts.id
    assert (details["responder"], details["responder_id"]) == ("Support Bot", "resp-1")
    assert (details["status"], details["credits"], details["duration"]) == ("failed", "12.5", "42s")
    assert details["failing_step"] == "Look up the customer"
    assert details["error"] == "Tool 'crm.lookup' failed: HTTP 502 from upstream"
    assert details["labels"] == {"team": "payments"}  # the rule's own labels
    assert details["annotations"] == {"runbook_url": RUNBOOK, "owner": "ops"}
    assert event["links"] == [
        {"href": n.alert.link, "text": "Open execution"},
        {"href": RUNBOOK, "text": "Runbook"},
    ]
    assert (event["client"], event["client_url"]) == ("zaia-relay", n.alert.link)


async def test_one_incident_a_windowed_alert_reminded_then_resolved() -> None:
    alert = make_alert(windowed=True, severity="warning")
    resolved = dataclasses.replace(alert, state="resolved", ended_at=T0)
    messages = [
        make_notification(alert, sink="pager"),
        make_notification(alert, sink="pager", kind="reminder", sequence=1),
        make_notification(resolved, sink="pager", kind="resolved"),
    ]
    async with FakePagerDuty() as pd:
        for n in messages:
            await send(pd, [n])
    assert [e["event_action"] for e in pd.events] == ["trigger", "trigger", "resolve"]
    assert list(pd.incidents) == [alert.id]
    incident = pd.incidents[alert.id]
    assert incident.status == "resolved"
    assert len(incident.events) == 3
    assert pd.events[1]["payload"]["summary"].startswith("[still firing] ")
    assert pd.events[0]["payload"]["severity"] == "warning"
    # A resolve carries only what PagerDuty reads.
    assert set(pd.events[2]) == {"routing_key", "event_action", "dedup_key"}


@pytest.mark.parametrize(
    ("severity", "expected"), [("critical", "critical"), ("warning", "warning"), ("info", "info")]
)
def test_severities_map_to_pagerdutys(severity: Any, expected: str) -> None:
    n = make_notification(make_alert(severity=severity))
    assert pagerduty_event(n, routing_key=ROUTING_KEY)["payload"]["severity"] == expected


def test_an_unknown_severity_becomes_error() -> None:
    n = make_notification(dataclasses.replace(make_alert(), severity="fatal"))  # type: ignore[arg-type]
    assert pagerduty_event(n, routing_key=ROUTING_KEY)["payload"]["severity"] == "error"


@pytest.mark.parametrize(
    ("kind", "state", "action"),
    [
        ("firing", "firing", "trigger"),
        ("reminder", "firing", "trigger"),
        ("test", "firing", "trigger"),
        ("resolved", "resolved", "resolve"),
        ("resolved", "firing", "resolve"),
    ],
)
def test_event_actions(kind: Any, state: Any, action: str) -> None:
    alert = dataclasses.replace(make_alert(), state=state)
    assert event_action(make_notification(alert, kind=kind)) == action


texts = st.text(st.characters(codec="utf-8"), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(summary=texts, source=st.text(min_size=1, max_size=400), responder=texts, error=texts)
def test_every_event_obeys_the_events_api_rules(
    summary: str, source: str, responder: str, error: str
) -> None:
    alert = make_alert(summary=summary or None, source=source, error_excerpt=error)
    alert = dataclasses.replace(
        alert, summary=summary, labels={**alert.labels, "responder": responder}
    )
    for kind in ("firing", "reminder", "test"):
        event = pagerduty_event(make_notification(alert, kind=kind), routing_key=ROUTING_KEY)  # type: ignore[arg-type]
        assert pagerduty_errors(event, routing_keys={ROUTING_KEY}) == []
        assert 1 <= len(event["payload"]["summary"]) <= 1024


async def test_a_route_group_is_one_event_an_alert_in_one_message(store: Store) -> None:
    async with FakePagerDuty() as pd:
        sink = PagerDutySink("pager", pd_settings(pd.api_url))
        try:
            burst = await deliver_group(sink, store, count=4)
        finally:
            await sink.aclose()
    assert [e["dedup_key"] for e in pd.events] == [n.alert.id for n in burst]
    assert len(pd.incidents) == 4
    assert pd.refused == []


async def test_a_group_failing_part_way_resends_only_what_pagerduty_did_not_take() -> None:
    burst = [firing() for _ in range(3)]
    async with FakePagerDuty() as pd:
        pd.fail_next = [None, None, (429, {"Retry-After": "5"})]
        sink = PagerDutySink("pager", pd_settings(pd.api_url))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send(burst)
            await sink.send(burst)  # the worker's retry of the same message
            restarted = PagerDutySink("pager", pd_settings(pd.api_url))
            await restarted.send(burst)  # a restart forgot: sent again, deduplicated
            await restarted.aclose()
        finally:
            await sink.aclose()
    assert caught.value.retry_after_s == 5.0
    assert pd.requests == 3 + 1 + 3
    assert [e["dedup_key"] for e in pd.events[:3]] == [n.alert.id for n in burst]
    assert len(pd.incidents) == 3
    assert all(len(i.events) == 2 for i in pd.incidents.values())


async def test_invalid_event_is_dead_with_pagerdutys_errors_kept() -> None:
    async with FakePagerDuty(routing_keys=set(), echo_key=True) as pd:
        sink = PagerDutySink("pager", pd_settings(pd.api_url))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([firing()])
        finally:
            await sink.aclose()
    error = caught.value
    assert not error.retryable
    assert "HTTP 400" in str(error)
    assert "Invalid routing key" in str(error)
    assert "sinks.pager.routing_key" in str(error)
    assert ROUTING_KEY not in str(error)
    assert ROUTING_KEY not in repr(sink)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after_s"),
    [
        (429, {"Retry-After": "30"}, 30.0),
        (500, {}, None),
        (503, {}, None),
    ],
)
async def test_throttling_and_outages_are_retried(
    status: int, headers: dict[str, str], retry_after_s: float | None
) -> None:
    async with FakePagerDuty() as pd:
        pd.fail_next = [(status, headers)]
        sink = PagerDutySink("pager", pd_settings(pd.api_url))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([firing()])
            await sink.send([firing()])  # the next one goes through
        finally:
            await sink.aclose()
    assert caught.value.retryable
    assert caught.value.retry_after_s == retry_after_s
    assert len(pd.events) == 1


def test_routing_key_must_be_an_integration_key() -> None:
    with pytest.raises(ValidationError) as caught:
        PagerDutySinkSettings.model_validate(
            {"type": "pagerduty", "routing_key": "short-Secret-Key"}
        )
    text = str(caught.value)
    assert "routing_key" in text
    assert "32-character integration key" in text
    assert "short-Secret-Key" not in text


def test_routing_key_from_a_file_and_the_default_api_url(tmp_path: Path) -> None:
    (tmp_path / "pd.key").write_text(ROUTING_KEY + "\n")
    loaded = PagerDutySinkSettings.model_validate(
        {"type": "pagerduty", "routing_key_file": "pd.key"}, context={"base_dir": tmp_path}
    )
    assert loaded.routing_key.get_secret_value() == ROUTING_KEY
    assert loaded.api_url == "https://events.pagerduty.com/v2/enqueue"


def test_api_url_must_be_https_off_the_machine() -> None:
    with pytest.raises(ValidationError) as caught:
        pd_settings("http://events.example.com/v2/enqueue")
    assert "api_url" in str(caught.value)
    assert "https" in str(caught.value)
