"""The Alertmanager sink: request shape against a recording receiver, and a round trip
through a real Alertmanager (Debian package prometheus-alertmanager) on loopback."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.errors import SinkError
from relay.scrub import REDACTED, SecretScrubber
from relay.settings import AlertmanagerSinkSettings
from relay.settings.loader import parse_settings
from relay.sinks.alertmanager import ALERTMANAGER_MAX_BATCH, AlertmanagerSink
from tests.alertmanager_kit import Alertmanager
from tests.delivery_kit import Receiver, Reply, make_alert, make_notification


def am_settings(url: str, **extra: Any) -> AlertmanagerSinkSettings:
    return AlertmanagerSinkSettings.model_validate({"type": "alertmanager", "url": url, **extra})


async def test_posts_alerts_array_with_basic_auth() -> None:
    async with Receiver() as receiver:
        settings = am_settings(
            f"{receiver.url}/am/",
            basic_auth={"username": "relay", "password": "AMPASSWORD-9"},
            labels={"team": "ai"},
        )
        sink = AlertmanagerSink("am", settings)
        items = [make_notification() for _ in range(3)]
        try:
            assert sink.max_batch == ALERTMANAGER_MAX_BATCH
            await sink.send(items)
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    assert request.path == "/am/api/v2/alerts"
    expected = base64.b64encode(b"relay:AMPASSWORD-9").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    body = request.json()
    assert [a["labels"]["alert_id"] for a in body] == [n.alert.id for n in items]
    assert all(a["labels"]["team"] == "ai" for a in body)


async def test_bearer_token_and_errors_hide_it() -> None:
    async with Receiver(lambda _: Reply(400, "bad alert")) as receiver:
        sink = AlertmanagerSink("am", am_settings(receiver.url, bearer_token="AMTOKEN-77"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert receiver.requests[0].headers["authorization"] == "Bearer AMTOKEN-77"
    assert caught.value.retryable is False
    assert "Alertmanager refused the message (HTTP 400: bad alert)" in str(caught.value)
    assert "AMTOKEN-77" not in str(caught.value)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on loopback, clustering off; yields its base URL."""
    with Alertmanager(tmp_path) as instance:
        yield instance.start().url


async def test_round_trip_through_a_real_alertmanager(alertmanager: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    firing = make_alert(execution_id="exec-am-1", started_at=now - timedelta(minutes=1))
    windowed = make_alert(rule="agent-failure-rate", windowed=True, started_at=now)
    sink = AlertmanagerSink("am", am_settings(alertmanager, labels={"team": "ai"}))
    try:
        await sink.send([make_notification(firing), make_notification(windowed)])
        async with httpx.AsyncClient() as client:
            stored = (await client.get(f"{alertmanager}/api/v2/alerts")).json()
        by_id = {a["labels"]["alert_id"]: a for a in stored}
        assert set(by_id) == {firing.id, windowed.id}
        am_alert = by_id[firing.id]
        assert am_alert["labels"]["alertname"] == "execution-failed"
        assert am_alert["labels"]["severity"] == "critical"
        assert am_alert["labels"]["team"] == "ai"
        assert am_alert["annotations"]["execution_id"] == "exec-am-1"
        assert am_alert["status"]["state"] == "active"
        # Resolving sets endsAt: Alertmanager no longer lists it as active.
        resolved = replace(windowed, state="resolved", ended_at=now)
        await sink.send([make_notification(resolved, kind="resolved")])
        async with httpx.AsyncClient() as client:
            active = (await client.get(f"{alertmanager}/api/v2/alerts?active=true")).json()
        assert {a["labels"]["alert_id"] for a in active} == {firing.id}
    finally:
        await sink.aclose()


def test_a_password_in_the_url_is_a_secret() -> None:
    text = """
sources: [{name: prod, api_key: zk-live-0b1c2d3e4f5a}]
sinks:
  am: {type: alertmanager, url: "https://relay:am-url-pa55word@am.example.com"}
"""
    settings = parse_settings(text, environ={})
    scrubber = SecretScrubber.from_settings(settings)
    sent = "Basic " + base64.b64encode(b"relay:am-url-pa55word").decode()
    assert scrubber.scrub_text(f"{sent} am-url-pa55word") == f"Basic {REDACTED} {REDACTED}"
    sink = AlertmanagerSink("am", settings.sinks["am"])  # type: ignore[arg-type]
    assert "pa55word" not in repr(sink)
