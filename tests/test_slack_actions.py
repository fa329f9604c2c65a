"""Slack's buttons end to end: a firing message posted by the real Slack sink to a
loopback Slack Web API, then clicks signed the way Slack signs them, posted to the
relay's real aiohttp app (`POST /slack/interactions`) over a real SQLite store."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from structlog.testing import capture_logs

from relay.domain.alerts import Alert, Notification
from relay.settings import Settings, config_warnings
from relay.sinks.slack import SlackSink
from relay.sinks.slack_blocks import ACTIONS_BLOCK_ID
from relay.store import SqliteStore
from relay.store.records import MessageRefRecord
from tests.delivery_kit import FakeSlack
from tests.http_rig import ADMIN_TOKEN, WEBHOOK_URL, HttpRig, commit_alerts, http_rig, make_alert

SIGNING = "8f742231b10e8888abcd99edabcd00d61"
OTHER_SIGNING = "0c3e1f2a9b8d7c6e5f4a3b2c1d0e9f8a7"
TOKEN = "xoxb-7777-8888-ACTIONSbottoken"
OTHER_TOKEN = "xoxb-5555-6666-OTHERbottoken"
CHANNEL = "C0ALERTS"
SECRETS = (SIGNING, OTHER_SIGNING, TOKEN, OTHER_TOKEN, ADMIN_TOKEN)
PATH = "/slack/interactions"


@dataclass
class Rig:
    http: HttpRig
    slack: FakeSlack
    alert: Alert
    channel: str
    ts: str
    buttons: dict[str, dict[str, Any]]  # by action_id, as posted

    @property
    def now(self) -> datetime:
        return self.http.clock()

    def updates(self) -> list[dict[str, Any]]:
        return [c.payload for c in self.slack.calls if c.method == "chat.update"]

    async def click(
        self,
        action_id: str,
        *,
        user: tuple[str, str] = ("U0ALICE", "alice"),
        secret: str = SIGNING,
        signed_at: datetime | None = None,
        value: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> httpx.Response:
        button = self.buttons.get(action_id, {"action_id": action_id, "value": ""})
        body = payload or click_payload(
            action_id, value or button["value"], user=user, channel=self.channel, ts=self.ts
        )
        raw = urlencode({"payload": json.dumps(body)}).encode()
        headers = slack_headers(raw, secret=secret, at=signed_at or self.now)
        return await self.http.client.post(PATH, content=raw, headers=headers)


def click_payload(
    action_id: str, value: str, *, user: tuple[str, str], channel: str, ts: str
) -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for a button click."""
    return {
        "type": "block_actions",
        "user": {"id": user[0], "username": user[1], "name": user[1], "team_id": "T0"},
        "api_app_id": "A0APP",
        "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "channel": {"id": channel, "name": "alerts"},
        "message": {"type": "message", "ts": ts, "text": "FIRING"},
        "actions": [
            {
                "type": "button",
                "block_id": ACTIONS_BLOCK_ID,
                "action_id": action_id,
                "value": value,
                "action_ts": "1772442000.000100",
            }
        ],
    }


def slack_headers(body: bytes, *, secret: str, at: datetime) -> dict[str, str]:
    """Slack's signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    timestamp = str(int(at.timestamp()))
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def slack_sinks(api_url: str) -> dict[str, Any]:
    return {
        "oncall": {
            "type": "slack",
            "bot_token": TOKEN,
            "channel": CHANNEL,
            "signing_secret": SIGNING,
            "api_url": api_url,
        },
        # Another Slack app: its secret signs only its own clicks, and its token
        # (which the fake refuses) edits only its own messages.
        "other": {
            "type": "slack",
            "bot_token": OTHER_TOKEN,
            "channel": CHANNEL,
            "signing_secret": OTHER_SIGNING,
            "api_url": api_url,
        },
        "finops": {"type": "webhook", "url": WEBHOOK_URL},
    }


@asynccontextmanager
async def slack_rig(
    tmp_path: Path, *, alert: Alert | None = None, sent_to: tuple[str, ...] = ("oncall",)
) -> AsyncIterator[Rig]:
    """`sent_to`: the sinks the alert was queued for (the store's outbox)."""
    async with (
        FakeSlack(token=TOKEN, channels=[CHANNEL]) as slack,
        http_rig(tmp_path, more={"sinks": slack_sinks(slack.api_url)}) as http,
    ):
        alert = alert or make_alert(1, at=http.clock())
        await commit_alerts(http.store, [alert], at=http.clock(), sinks=sent_to)
        sink = SlackSink("oncall", http.settings.sinks["oncall"])  # type: ignore[arg-type]
        try:
            note = Notification.about(alert, sink="oncall", kind="firing", created_at=http.clock())
            await sink.send([note])
        finally:
            await sink.aclose()
        [posted] = slack.calls
        [attachment] = posted.payload["attachments"]
        [actions] = [b for b in attachment["blocks"] if b.get("block_id") == ACTIONS_BLOCK_ID]
        buttons = {e["action_id"]: e for e in actions["elements"]}
        yield Rig(http, slack, alert, posted.channel, posted.ts, buttons)


async def alert_json(rig: Rig) -> dict[str, Any]:
    answer = await rig.http.client.get("/api/v1/alerts")
    [listed] = [a for a in answer.json()["alerts"] if a["id"] == rig.alert.id]
    return listed  # type: ignore[no-any-return]


def no_secrets(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --- valid clicks ------------------------------------------------------------------------


async def test_acknowledge_marks_the_alert_and_edits_the_message(tmp_path: Path) -> None:
    async with slack_rig(tmp_path) as rig:
        assert list(rig.buttons) == ["relay_ack", "relay_silence_1h", "relay_silence_24h"]
        with capture_logs() as logs:
            answer = await rig.click("relay_ack")
        assert answer.status_code == 200
        assert answer.content == b""
        acknowledged = (await alert_json(rig))["acknowledged"]
        assert acknowledged == {
            "by": "alice (slack:U0ALICE)",
            "at": "2026-03-02T09:00:00Z",
            "comment": "acknowledged from Slack",
        }
        [update] = rig.updates()
        assert (update["channel"], update["ts"]) == (rig.channel, rig.ts)
        blocks = json.dumps(update["attachments"])
        assert "Acknowledged by alice (slack:U0ALICE) at 2026-03-02T09:00:00Z" in blocks
        assert ACTIONS_BLOCK_ID not in blocks, "the buttons made way for the line"
        assert rig.alert.summary in blocks, "the alert's content stays"
        assert rig.slack.messages[rig.ts] == update
        assert [e["event"] for e in logs if e["event"].startswith("slack.")] == ["slack.action"]
        no_secrets(answer.text, repr(logs), json.dumps(update))

        # A second click (Bob's, or Slack's retry) changes nothing: the first one stays.
        rig.http.clock.advance(seconds=30)
        again = await rig.click("relay_ack", user=("U0BOB", "bob"))
        assert again.status_code == 200
        assert (await alert_json(rig))["acknowledged"] == acknowledged
        assert "Acknowledged by alice" in json.dumps(rig.updates()[-1]["attachments"])

        page = await rig.http.client.get("/")
        assert 'data-acknowledged="true"' in page.text
        assert "by alice (slack:U0ALICE) at 2026-03-02 09:00:00Z" in page.text

    # It is in the store: a restart (or another replica) reads it back.
    async with SqliteStore(tmp_path / "state.db") as reopened:
        stored = await reopened.get_alert(rig.alert.id)
    assert stored is not None
    assert stored.acknowledgement is not None
    assert stored.acknowledgement.by == "alice (slack:U0ALICE)"


@pytest.mark.parametrize(
    ("action_id", "hours"), [("relay_silence_1h", 1), ("relay_silence_24h", 24)]
)
async def test_silence_buttons_create_a_silence_of_the_alert(
    tmp_path: Path, action_id: str, hours: int
) -> None:
    async with slack_rig(tmp_path) as rig:
        answer = await rig.click(action_id)
        assert answer.status_code == 200
        [silence] = await rig.http.store.list_silences(now=rig.now)
        assert silence.creator == "alice (slack:U0ALICE)"
        assert "from Slack" in silence.comment
        assert silence.ends_at == rig.now + timedelta(hours=hours)
        assert silence.matches(rig.alert.labels | {"responder_id": "resp-1"})
        listed = (await rig.http.client.get("/api/v1/silences")).json()["silences"]
        [api_silence] = [s for s in listed if s["origin"] == "api"]
        assert api_silence["matchers"] == sorted(
            ['rule="execution-failed"', 'source="prod"', 'responder_id="resp-1"']
        )
        assert api_silence["creator"] == "alice (slack:U0ALICE)"
        [update] = rig.updates()
        until = (rig.now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert f"Silenced by alice (slack:U0ALICE) at 2026-03-02T09:00:00Z until {until}" in (
            json.dumps(update["attachments"])
        )
        assert (await alert_json(rig))["acknowledged"] is None

        # The same click replayed stores no second silence.
        assert (await rig.click(action_id)).status_code == 200
        assert len(await rig.http.store.list_silences(now=rig.now)) == 1


async def test_the_matching_secret_picks_the_token_that_edits(tmp_path: Path) -> None:
    async with slack_rig(tmp_path, sent_to=("oncall", "other")) as rig:
        with capture_logs() as logs:
            answer = await rig.click("relay_ack", secret=OTHER_SIGNING)
        assert answer.status_code == 200, "the other app's secret signed it: valid"
        assert (await alert_json(rig))["acknowledged"] is not None, "the action is done"
        assert rig.updates() == [], "the other sink's token was refused by Slack"
        [failed] = [e for e in logs if e["event"] == "slack.update_failed"]
        assert failed["sink"] == "other"
        assert "invalid_auth" in failed["error"]
        no_secrets(repr(logs))


# --- refused clicks: nothing changes ---------------------------------------------------------


async def test_an_app_cannot_act_on_an_alert_its_sink_was_never_sent(tmp_path: Path) -> None:
    async with slack_rig(tmp_path) as rig:  # sent to oncall only
        answer = await rig.click("relay_ack", secret=OTHER_SIGNING)
        assert answer.status_code == 400
        assert "never sent to sink 'other'" in answer.json()["message"]
        await _nothing_changed(rig)
        assert (await rig.click("relay_ack", secret=SIGNING)).status_code == 200


async def test_a_message_reference_also_shows_the_sink_was_sent_the_alert(
    tmp_path: Path,
) -> None:
    async with slack_rig(tmp_path, sent_to=()) as rig:  # no outbox row (pruned, say)
        assert (await rig.click("relay_ack")).status_code == 400
        ref = MessageRefRecord(channel=rig.channel, ts=rig.ts, single=True)
        await rig.http.store.put_message_ref("oncall", rig.alert.id, ref, now=rig.now)
        assert (await rig.click("relay_ack")).status_code == 200
        assert (await alert_json(rig))["acknowledged"] is not None


async def _nothing_changed(rig: Rig) -> None:
    assert (await alert_json(rig))["acknowledged"] is None
    assert await rig.http.store.list_silences(now=rig.now) == []
    assert rig.updates() == []


async def test_badly_signed_unsigned_and_old_clicks_are_refused(tmp_path: Path) -> None:
    async with slack_rig(tmp_path) as rig:
        assert (await rig.click("relay_ack", secret="not-the-secret")).status_code == 401
        raw = urlencode({"payload": json.dumps({"type": "block_actions"})}).encode()
        for headers in (
            {},
            {"X-Slack-Signature": "v0=00"},
            {"X-Slack-Request-Timestamp": str(int(rig.now.timestamp()))},
            {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        ):
            answer = await rig.http.client.post(PATH, content=raw, headers=headers)
            assert answer.status_code == 401, headers
        old = rig.now - timedelta(minutes=6)
        stale = await rig.click("relay_silence_24h", signed_at=old)
        assert stale.status_code == 401
        assert stale.json()["error"] == "unauthorized"
        # A click signed now and replayed 6 minutes later is as old.
        body = click_payload(
            "relay_ack", rig.alert.id, user=("U1", "eve"), channel=rig.channel, ts=rig.ts
        )
        raw = urlencode({"payload": json.dumps(body)}).encode()
        headers = slack_headers(raw, secret=SIGNING, at=rig.now)
        rig.http.clock.advance(seconds=360)
        replayed = await rig.http.client.post(PATH, content=raw, headers=headers)
        assert replayed.status_code == 401
        # Tampering with a signed body breaks the signature.
        tampered = raw.replace(b"relay_ack", b"relay_silence_24h")
        rig.http.clock.advance(seconds=-360)
        assert (
            await rig.http.client.post(PATH, content=tampered, headers=headers)
        ).status_code == (401)
        await _nothing_changed(rig)
        no_secrets(stale.text, replayed.text)


async def test_unknown_alerts_and_malformed_payloads_are_bad_requests(tmp_path: Path) -> None:
    async with slack_rig(tmp_path) as rig:
        unknown = await rig.click("relay_ack", value="alert_000000000000000000000000")
        assert unknown.status_code == 400
        assert "no alert" in unknown.json()["message"]
        assert (await rig.click("relay_snooze", value=rig.alert.id)).status_code == 400
        not_ours = {"type": "view_submission", "user": {"id": "U1"}}
        assert (await rig.click("relay_ack", payload=not_ours)).status_code == 400
        for raw in (b"payload=%7Bnot-json", b"nothing=here", b"payload=%5B%5D"):
            headers = slack_headers(raw, secret=SIGNING, at=rig.now)
            answer = await rig.http.client.post(PATH, content=raw, headers=headers)
            assert answer.status_code == 400, raw
            no_secrets(answer.text)
        # A body that is not UTF-8 cannot carry Slack's signature (it signs text).
        binary = b"\xff\xfe"
        headers = slack_headers(binary, secret=SIGNING, at=rig.now)
        assert (await rig.http.client.post(PATH, content=binary, headers=headers)).status_code == (
            401
        )
        await _nothing_changed(rig)


async def test_no_admin_token_is_needed_but_no_sink_with_actions_is_a_404(
    tmp_path: Path,
) -> None:
    async with http_rig(tmp_path) as http:
        raw = b"payload=%7B%7D"
        answer = await http.client.post(
            PATH, content=raw, headers=slack_headers(raw, secret=SIGNING, at=http.clock())
        )
        assert answer.status_code == 404
        assert "signing_secret" in answer.json()["message"]


# --- the admin API's acknowledgement ------------------------------------------------------


async def test_the_admin_api_acknowledges_idempotently(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as http:
        alert = make_alert(7, at=http.clock())
        await commit_alerts(http.store, [alert], at=http.clock())
        url = f"/api/v1/alerts/{alert.id}/ack"
        assert (await http.client.post(url)).status_code == 401
        missing = await http.client.post("/api/v1/alerts/alert_nope/ack", headers=http.admin)
        assert missing.status_code == 404
        first = await http.client.post(url, headers=http.admin, json={"comment": "looking"})
        assert first.status_code == 200
        assert first.json()["acknowledged"] == {
            "by": "admin",
            "at": "2026-03-02T09:00:00Z",
            "comment": "looking",
        }
        http.clock.advance(seconds=60)
        again = await http.client.post(url, headers=http.admin, json={"by": "someone else"})
        assert again.status_code == 200
        assert again.json()["acknowledged"] == first.json()["acknowledged"]
        bad = await http.client.post(url, headers=http.admin, json={"by": ""})
        assert bad.status_code == 422
        one = await http.client.get(f"/api/v1/alerts/{alert.id}")
        assert one.json()["acknowledged"]["by"] == "admin"


# --- settings --------------------------------------------------------------------------------


def test_signing_secret_reads_from_a_file_and_warns_without_a_bot_token(tmp_path: Path) -> None:
    secret_file = tmp_path / "signing"
    secret_file.write_text(SIGNING + "\n")
    settings = Settings.model_validate(
        {
            "sources": [{"name": "prod", "api_key": "k" * 12}],
            "rules": [
                {
                    "name": "r",
                    "when": {"status": ["failed"]},
                    "severity": "info",
                    "sinks": ["a", "b"],
                }
            ],
            "sinks": {
                "a": {
                    "type": "slack",
                    "bot_token": TOKEN,
                    "channel": CHANNEL,
                    "signing_secret_file": str(secret_file),
                },
                "b": {
                    "type": "slack",
                    "webhook_url": "https://hooks.slack.com/services/T/B/X",
                    "signing_secret": OTHER_SIGNING,
                },
            },
        }
    )
    a = settings.sinks["a"]
    assert a.type == "slack"
    assert a.signing_secret is not None
    assert a.signing_secret.get_secret_value() == SIGNING
    assert a.takes_actions
    assert SIGNING in settings.secret_values(), "scrubbed from logs and responses"
    warnings = config_warnings(settings)
    assert [w for w in warnings if "signing_secret" in w] == [
        "sinks.b.signing_secret: only used with bot_token (messages of an incoming webhook "
        "carry no buttons and cannot be edited); it is ignored"
    ]
    no_secrets(*warnings, repr(settings))
