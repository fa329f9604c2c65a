"""PagerDuty and Teams sinks as an operator meets them: `check-config` names what is
wrong, `zaia-relay test-sink` delivers through each, and their credentials (the
routing key, the workflow URL and its `sig`) reach no stored error, API answer, log
line or command output, even when the vendor echoes them back."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from relay.scrub import REDACTED
from relay.settings.loader import load_settings
from relay.store import SqliteStore
from relay.telemetry.logs import configure_logging
from tests.http_rig import START, commit_alerts, make_alert
from tests.test_secret_echoes import ADMIN_TOKEN, api_bodies, deliver_all, store_file_bytes
from tests.vendor_kit import ROUTING_KEY, TEAMS_SIG, FakePagerDuty, FakeTeams

pytestmark = pytest.mark.slow


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(tmp_path: Path, *, pd_url: str, teams_url: str, key: str = ROUTING_KEY) -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - {{name: prod, api_key: zk-live-0b1c2d3e4f5a}}
store: {{url: "sqlite:///{tmp_path / "state.db"}"}}
server: {{listen: "127.0.0.1:0", admin_token: {ADMIN_TOKEN}}}
rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [pager, teams]
sinks:
  pager:
    type: pagerduty
    routing_key: {key}
    api_url: {pd_url}
  teams:
    type: teams
    webhook_url: "{teams_url}"
    group_wait: 0s  # one worker step sends it
"""
    )
    return config


def secret_forms(teams_url: str) -> set[str]:
    values = {ROUTING_KEY, TEAMS_SIG, teams_url}
    return values | {quote(v, safe="") for v in values}


def assert_clean(where: str, text: str, forms: set[str]) -> None:
    leaked = sorted(form for form in forms if form in text)
    assert not leaked, f"{where} holds {leaked}"


async def test_test_sink_reaches_pagerduty_and_teams(tmp_path: Path) -> None:
    async with FakePagerDuty() as pd, FakeTeams() as teams:
        config = write_config(tmp_path, pd_url=pd.api_url, teams_url=teams.webhook_url)
        paged, posted = await asyncio.gather(
            asyncio.to_thread(cli, config, "test-sink", "pager"),
            asyncio.to_thread(cli, config, "test-sink", "teams"),
        )
    assert paged.returncode == 0, paged.stderr
    assert posted.returncode == 0, posted.stderr
    (event,) = pd.events
    assert event["payload"]["summary"].startswith("[TEST] ")
    assert event["payload"]["severity"] == "info"
    (post,) = teams.posts
    assert "TEST" in json.dumps(post.card)
    for result in (paged, posted):
        assert_clean("test-sink", result.stdout + result.stderr, secret_forms(teams.webhook_url))


async def test_echoed_credentials_are_nowhere(tmp_path: Path) -> None:
    logs = io.StringIO()
    # PagerDuty knows no key (400, quoting the key); Teams refuses (400, quoting the URL).
    async with (
        FakePagerDuty(routing_keys=set(), echo_key=True) as pd,
        FakeTeams(status=400, echo_url=True) as teams,
    ):
        config = write_config(tmp_path, pd_url=pd.api_url, teams_url=teams.webhook_url)
        forms = secret_forms(teams.webhook_url)
        settings = load_settings(config)
        configure_logging(fmt="json", secrets=settings.secret_values(), stream=logs)
        async with SqliteStore(tmp_path / "state.db") as store:
            await commit_alerts(store, [make_alert(1)], at=START, sinks=["pager", "teams"])
            await deliver_all(settings, store)
            stored = {
                letter.notification.sink: letter.reason
                for letter in await store.dead_letters(limit=10)
            }
            api = await api_bodies(settings, store)
        tested = await asyncio.gather(
            asyncio.to_thread(cli, config, "test-sink", "pager"),
            asyncio.to_thread(cli, config, "test-sink", "teams"),
        )
    # Both were reached, and both answered 400.
    assert pd.refused
    assert teams.posts
    assert "Invalid routing key" in stored["pager"]
    assert "HTTP 400" in stored["teams"]
    assert REDACTED in stored["pager"]
    assert REDACTED in stored["teams"]
    for sink, reason in stored.items():
        assert_clean(f"the dead letter of {sink}", reason, forms)
    store_bytes = store_file_bytes(tmp_path)
    for form in forms:
        assert form.encode() not in store_bytes, f"the store file holds {form!r}"
    assert_clean("the API", api, forms)
    for result in tested:
        assert result.returncode == 1
        assert "HTTP 400" in result.stderr
        assert_clean("test-sink", result.stdout + result.stderr, forms)
    assert "delivery.dead" in logs.getvalue()
    assert_clean("the logs", logs.getvalue(), forms)


def test_check_config_names_each_problem_without_the_secrets(tmp_path: Path) -> None:
    teams_url = f"http://prod-00.westeurope.logic.azure.com/workflows/x?sig={TEAMS_SIG}"
    config = write_config(
        tmp_path,
        pd_url="http://events.pagerduty.com/v2/enqueue",
        teams_url=teams_url,
        key="not-32-chars-" + TEAMS_SIG[:6],
    )
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "sinks.pager.routing_key",
        "sinks.pager.api_url",
        "sinks.teams.webhook_url",
    ]
    assert "32-character integration key" in lines[0]
    assert "https" in lines[1]
    assert "https" in lines[2]
    assert TEAMS_SIG not in result.stderr
    assert "not-32-chars" not in result.stderr
