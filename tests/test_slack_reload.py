"""Slack clicks follow the settings in force: a reload (which replaces
`HttpContext.settings` as a whole, as `Assembly.reconfigure` does) rotates signing
secrets and bot tokens, removes sinks and adds them; and the edited message shows the
alert as stored (a resolved alert is not redrawn as firing)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from structlog.testing import capture_logs

from relay.http.common import CONTEXT
from relay.http.slack_actions import SLACK_CLIENTS
from tests.delivery_kit import FakeSlack
from tests.http_rig import commit_alerts, http_rig, make_alert, make_settings
from tests.test_slack_actions import (
    OTHER_SIGNING,
    OTHER_TOKEN,
    PATH,
    SIGNING,
    TOKEN,
    alert_json,
    click_payload,
    slack_headers,
    slack_rig,
    slack_sinks,
)

NEW_SIGNING = "ffffffffffffffffffffffffffffffff1"


def _reload(rig_http: Any, tmp_path: Path, sinks: dict[str, Any]) -> None:
    """What a reload does to the HTTP side: settings loaded anew, swapped as a whole."""
    rig_http.app[CONTEXT].settings = make_settings(tmp_path, more={"sinks": sinks})


async def test_a_rotated_secret_counts_at_once_and_a_removed_sinks_does_not(
    tmp_path: Path,
) -> None:
    async with slack_rig(tmp_path, sent_to=("oncall", "other")) as rig:
        sinks = slack_sinks(rig.slack.api_url)
        sinks["oncall"]["signing_secret"] = NEW_SIGNING
        del sinks["other"]
        _reload(rig.http, tmp_path, sinks)

        assert (await rig.click("relay_ack", secret=SIGNING)).status_code == 401, "old secret"
        assert (await rig.click("relay_ack", secret=OTHER_SIGNING)).status_code == 401
        assert (await alert_json(rig))["acknowledged"] is None
        assert (await rig.click("relay_ack", secret=NEW_SIGNING)).status_code == 200
        assert (await alert_json(rig))["acknowledged"] is not None
        assert len(rig.updates()) == 1


async def test_a_rotated_bot_token_edits_and_the_old_client_is_closed(tmp_path: Path) -> None:
    async with slack_rig(tmp_path) as rig:
        assert (await rig.click("relay_ack")).status_code == 200
        assert len(rig.updates()) == 1, "edited with TOKEN"
        clients = rig.http.app[SLACK_CLIENTS]
        [old] = clients._clients.values()

        sinks = slack_sinks(rig.slack.api_url)
        sinks["oncall"]["bot_token"] = OTHER_TOKEN  # the fake Slack refuses it
        _reload(rig.http, tmp_path, sinks)
        with capture_logs() as logs:
            assert (await rig.click("relay_silence_1h")).status_code == 200
        assert len(rig.updates()) == 1, "the new token was used, and refused"
        [failed] = [e for e in logs if e["event"] == "slack.update_failed"]
        assert "invalid_auth" in failed["error"]
        [new] = clients._clients.values()
        assert new is not old, "the old token's client was dropped (and closed)"
        assert TOKEN not in repr(logs)


async def test_a_sink_added_by_a_reload_takes_clicks(tmp_path: Path) -> None:
    async with (
        FakeSlack(token=TOKEN, channels=["C0ALERTS"]) as slack,
        http_rig(tmp_path) as http,
    ):
        alert = make_alert(1, at=http.clock())
        await commit_alerts(http.store, [alert], at=http.clock())
        raw_payload = click_payload(
            "relay_ack", alert.id, user=("U0BOB", "bob"), channel="C0ALERTS", ts="1.2"
        )
        raw = urlencode({"payload": json.dumps(raw_payload)}).encode()
        headers = slack_headers(raw, secret=SIGNING, at=http.clock())
        assert (await http.client.post(PATH, content=raw, headers=headers)).status_code == 404

        _reload(http, tmp_path, slack_sinks(slack.api_url))
        assert (await http.client.post(PATH, content=raw, headers=headers)).status_code == 200
        stored = await http.store.get_alert(alert.id)
        assert stored is not None
        assert stored.acknowledgement is not None


async def test_the_edit_of_a_resolved_alert_shows_it_resolved(tmp_path: Path) -> None:
    windowed = dataclasses.replace(make_alert(1), execution=None, group={"agent": "a1"})
    async with slack_rig(tmp_path, alert=windowed) as rig:
        resolved = dataclasses.replace(rig.alert, state="resolved", ended_at=rig.now)
        await commit_alerts(rig.http.store, [resolved], at=rig.now, sinks=())
        assert (await rig.click("relay_silence_24h")).status_code == 200
        [edited] = rig.updates()
        header = edited["attachments"][0]["blocks"][0]["text"]["text"]
        assert header.startswith("✅"), header
        assert (
            edited["attachments"][0]["color"]
            != rig.slack.calls[0].payload["attachments"][0]["color"]
        )
