"""`zaia-relay silences ... --url`: silences through a running relay's HTTP API, as a
real subprocess against a real server on loopback, with the token from the environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.http_rig import ADMIN_TOKEN, http_rig

pytestmark = pytest.mark.slow


def remote(*args: str, token: str | None = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RELAY_ADMIN_TOKEN", "RELAY_CONFIG")}
    if token is not None:
        env["RELAY_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "relay", "silences", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


async def test_add_list_and_expire_through_the_api_without_a_config_file(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        url = str(rig.client.base_url)
        # Options before the matchers too: they still count as matchers.
        added = await asyncio.to_thread(
            remote, "add", "--url", url, "--duration", "1h", 'team=~"pay.*"', "severity=critical"
        )
        assert added.returncode == 0, added.stderr
        silence_id = added.stdout.split()[1]
        [stored] = await rig.store.list_silences(now=rig.clock())
        assert stored.id == silence_id
        assert sorted(str(m) for m in stored.matchers) == ['severity="critical"', 'team=~"pay.*"']
        assert stored.creator.startswith("cli:")

        listed = await asyncio.to_thread(remote, "list", "--url", url)
        assert listed.returncode == 0, listed.stderr
        assert silence_id in listed.stdout
        assert 'team=~"pay.*"' in listed.stdout

        expired = await asyncio.to_thread(remote, "expire", silence_id, "--url", url)
        assert expired.returncode == 0, expired.stderr
        assert await rig.store.list_silences(now=rig.clock()) == []
        for done in (added, listed, expired):
            assert ADMIN_TOKEN not in done.stdout + done.stderr


async def test_refusals_say_why_and_change_nothing(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        url = str(rig.client.base_url)
        no_token = await asyncio.to_thread(remote, "add", "--url", url, "rule=x", token=None)
        assert no_token.returncode == 2
        assert "RELAY_ADMIN_TOKEN" in no_token.stderr

        wrong = await asyncio.to_thread(remote, "add", "--url", url, "rule=x", token="w" * 24)
        assert wrong.returncode == 1
        assert "HTTP 401" in wrong.stderr
        assert "w" * 24 not in wrong.stderr

        bad = await asyncio.to_thread(remote, "add", "--url", url, 'team=~"("')
        assert bad.returncode == 2
        assert "matchers[0]" in bad.stderr
        assert "invalid regex" in bad.stderr
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []


async def test_an_unreachable_relay_is_named_without_a_traceback() -> None:
    answer = await asyncio.to_thread(remote, "list", "--url", "http://127.0.0.1:9")
    assert answer.returncode == 1
    assert "cannot reach the relay at http://127.0.0.1:9" in answer.stderr
    assert "Traceback" not in answer.stderr
