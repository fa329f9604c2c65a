"""Operator commands as real subprocesses: test-sink, deliveries, silences."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from relay.store import SqliteStore
from tests.relay_process import alert_failures_to
from tests.test_store_alerts import alert_cycle, make_alert, notify
from tests.test_store_sqlite import T0

pytestmark = pytest.mark.slow

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_config(
    tmp_path: Path, *, hook_url: str = "http://127.0.0.1:9/unused", **sink_options: str
) -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - name: prod
    api_key: k
store:
  url: sqlite:///{tmp_path}/state.db
{alert_failures_to(hook_url, secret=SECRET, **sink_options)}"""
    )
    return config


@pytest.mark.parametrize("sink_options", [{}, {"max_alerts_per_request": "5"}])
async def test_test_sink_sends_one_marked_signed_alert(
    tmp_path: Path, sink_options: dict[str, str]
) -> None:
    received: list[tuple[dict[str, str], dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.json()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        config = write_config(tmp_path, hook_url=url, **sink_options)
        done = await asyncio.to_thread(cli, "test-sink", "hook", config=config)
        missing = await asyncio.to_thread(cli, "test-sink", "pager", config=config)
    finally:
        await runner.cleanup()
    assert done.returncode == 0, done.stderr
    assert "sent a test alert through sink 'hook'" in done.stdout
    [(headers, body)] = received
    # It says how the receiver names it (a batch id when the sink batches).
    assert f"webhook-id {headers['webhook-id']}" in done.stdout
    assert headers["webhook-id"].startswith("msg_batch_") == bool(sink_options)
    assert headers["webhook-signature"].startswith("v1,")
    assert "[TEST]" in json.dumps(body)
    assert missing.returncode == 2
    assert "sinks.pager: no such sink; configured sinks: hook" in missing.stderr
    assert SECRET not in done.stdout + done.stderr


async def test_test_sink_reports_a_refusal(tmp_path: Path) -> None:
    config = write_config(tmp_path, hook_url="http://127.0.0.1:9/closed-port")
    result = await asyncio.to_thread(cli, "test-sink", "hook", config=config)
    assert result.returncode == 1
    assert "test alert not delivered" in result.stderr


async def test_dead_letters_are_listed_replayed_and_purged(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with SqliteStore(tmp_path / "state.db") as store:
        alerts = [make_alert(f"exec-{n}", at=T0) for n in range(3)]
        notifications = [n for a in alerts for n in notify(a, "hook", at=T0)]
        await store.commit_cycle(alert_cycle(alerts, notifications, at=T0))
        for notification in notifications:
            await store.mark_dead("hook", notification.id, reason="HTTP 410 Gone", now=T0)
    ids = [n.id for n in notifications]

    listed = await asyncio.to_thread(cli, "deliveries", "list", config=config)
    assert listed.returncode == 0
    assert all(i in listed.stdout for i in ids)
    assert "reason: HTTP 410 Gone" in listed.stdout

    retried = await asyncio.to_thread(cli, "deliveries", "retry", ids[0], config=config)
    assert "1 dead letter(s) queued for delivery again" in retried.stdout
    refused = await asyncio.to_thread(cli, "deliveries", "purge", config=config)
    assert refused.returncode == 2
    purged = await asyncio.to_thread(cli, "deliveries", "purge", "--all", config=config)
    assert "2 dead letter(s) dropped" in purged.stdout

    async with SqliteStore(tmp_path / "state.db") as store:
        assert (await store.outbox_counts())["hook"] == (1, 0)


async def test_the_cli_leaves_the_daemons_leases_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with SqliteStore(tmp_path / "state.db") as store:
        alert = make_alert("exec-1", at=T0)
        await store.commit_cycle(alert_cycle([alert], notify(alert, "hook", at=T0), at=T0))
        await store.claim_due("hook", now=T0, limit=10, lease_s=85)  # the daemon's, in flight
    listed = await asyncio.to_thread(cli, "deliveries", "list", config=config)
    assert listed.returncode == 0, listed.stderr
    async with SqliteStore(tmp_path / "state.db") as store:
        assert await store.next_due_at("hook") == T0 + timedelta(seconds=85)


async def test_silences_are_added_listed_and_expired(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = await asyncio.to_thread(
        cli,
        "silences", "add", "--matcher", "rule=execution-failed", "--duration", "1h",
        "--creator", "ops", "--comment", "maintenance",
        config=config,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.split()[1]
    listed = await asyncio.to_thread(cli, "silences", "list", config=config)
    assert silence_id in listed.stdout
    assert 'rule="execution-failed"' in listed.stdout  # canonical form

    bad = await asyncio.to_thread(cli, "silences", "add", "--matcher", "colour=~(", config=config)
    assert bad.returncode == 2
    assert "silences add: colour=~(: invalid regex" in bad.stderr

    expired = await asyncio.to_thread(cli, "silences", "expire", silence_id, config=config)
    assert expired.returncode == 0
    after = await asyncio.to_thread(cli, "silences", "list", config=config)
    assert silence_id not in after.stdout
    everything = await asyncio.to_thread(cli, "silences", "list", "--all", config=config)
    assert f"{silence_id}  expired" in everything.stdout
