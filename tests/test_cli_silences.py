"""`zaia-relay silences add|list` with Alertmanager matchers, as real subprocesses on a
real SQLite store: positional matchers like amtool, the older `--matcher`, canonical
listing, recurring config silences, refused matchers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from relay.clock import utcnow
from relay.store import SqliteStore
from tests.relay_process import alert_failures_to
from tests.test_cli_ops import cli

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - name: prod
    api_key: k
store:
  url: sqlite:///{tmp_path}/state.db
time_intervals:
  - name: every-month
    months: ["january:december"]
silences:
  - matchers: ['source=~"staging|dev"']
    time_intervals: [every-month]
    comment: quiet staging
{alert_failures_to("http://127.0.0.1:9/unused")}"""
    )
    return config


async def test_matchers_in_alertmanager_syntax(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = await asyncio.to_thread(
        cli,
        "silences", "add", 'team=~"pay.*"', "severity=critical", "responder!=Sales Bot",
        "--matcher", "rule=execution-failed", "--duration", "2h", "--comment", "deploy",
        config=config,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]

    async with SqliteStore(tmp_path / "state.db") as store:
        stored = await store.get_silence(silence_id)
    assert stored is not None
    assert [str(m) for m in stored.matchers] == [
        'team=~"pay.*"',
        'severity="critical"',
        'responder!="Sales Bot"',
        'rule="execution-failed"',
    ]
    assert stored.matches({"team": "payments", "severity": "critical", "rule": "execution-failed"})
    assert not stored.matches(
        {"team": "payments", "severity": "critical", "rule": "execution-failed",
         "responder": "Sales Bot"}
    )  # fmt: skip
    assert (stored.ends_at - stored.starts_at).total_seconds() == 7200
    assert stored.starts_at <= utcnow()

    listed = await asyncio.to_thread(cli, "silences", "list", config=config)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    ours = lines[silence_id]
    canonical = 'responder!="Sales Bot",rule="execution-failed",severity="critical",team=~"pay.*"'
    assert f"  active  api  {canonical}  " in ours
    assert ours.endswith("deploy")
    [recurring] = [line for key, line in lines.items() if key.startswith("cfg_")]
    assert 'source=~"staging|dev"' in recurring
    assert "-> never  recurring: every-month (muting now)" in recurring


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        (['team=~"(pay"'], "silences add: team=~\"(pay\": invalid regex '(pay'"),
        (["rule=x", "nonsense"], "silences add: nonsense: cannot read 'nonsense'"),
        (["severity=loud"], "silences add: severity=loud: severity should be one of"),
        (['team!="payments"'], "silences add: matchers: every matcher also matches"),
        ([], "silences add: matchers: give at least one matcher"),
    ],
)
async def test_refused_matchers(tmp_path: Path, matchers: list[str], message: str) -> None:
    config = write_config(tmp_path)
    refused = await asyncio.to_thread(cli, "silences", "add", *matchers, config=config)
    assert refused.returncode == 2
    assert message in refused.stderr
    async with SqliteStore(tmp_path / "state.db") as store:
        assert await store.list_silences(now=utcnow(), include_expired=True) == []


async def test_expire_takes_exactly_one_id(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    none = await asyncio.to_thread(cli, "silences", "expire", config=config)
    assert none.returncode == 2
    assert "give the silence id" in none.stderr
    stray = await asyncio.to_thread(cli, "silences", "list", "rule=x", config=config)
    assert stray.returncode == 2


async def test_a_silence_longer_than_a_year_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for duration in ("400d", "99999999999999999999s"):
        added = await asyncio.to_thread(
            cli, "silences", "add", "rule=execution-failed", "--duration", duration, config=config
        )
        assert added.returncode == 2, added.stderr
        assert "Traceback" not in added.stderr
        assert "duration" in added.stderr
