"""`zaia-relay demo` as a newcomer runs it: alerts within seconds, Ctrl-C exits cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import httpx
import pytest

pytestmark = pytest.mark.slow

FIRST_ALERT_WITHIN_S = 10.0
# The promise: the story reaches a resolved alert within 30 s of starting.
RESOLVED_WITHIN_S = 30.0


async def read_until(
    stream: asyncio.StreamReader, pattern: str, *, timeout_s: float, seen: list[str]
) -> str:
    async with asyncio.timeout(timeout_s):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError("the demo exited early:\n" + "\n".join(seen))
            line = raw.decode().rstrip()
            seen.append(line)
            if re.search(pattern, line):
                return line


async def test_the_demo_shows_alerts_within_seconds_and_stops_on_ctrl_c() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "demo",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        banner = await read_until(process.stdout, r"status page\s+http://", timeout_s=30, seen=seen)
        status_url = banner.split()[-1]
        token_line = await read_until(process.stdout, r"admin token\s+\S+", timeout_s=5, seen=seen)
        token = token_line.split()[-1]
        story_started = asyncio.get_running_loop().time()
        first = await read_until(
            process.stdout, r"firing\s+execution-failed", timeout_s=FIRST_ALERT_WITHIN_S, seen=seen
        )
        assert "Call CRM API" in first, "the alert names the failing step"
        assert "Customer Support Agent" in first, "the alert names the agent, not its id"
        await read_until(process.stdout, r"firing\s+execution-cancelled", timeout_s=15, seen=seen)
        # The spike is one grouped message listing the five failures, not five lines.
        group = await read_until(process.stdout, r"\bgroup\s+5 alerts", timeout_s=15, seen=seen)
        assert "Sales Qualifier" in group
        assert "failures-by-agent" in group
        await read_until(
            process.stdout,
            r"resolved\s+agent-failure-rate",
            timeout_s=RESOLVED_WITHIN_S - (asyncio.get_running_loop().time() - story_started),
            seen=seen,
        )
        async with httpx.AsyncClient() as client:
            page = await client.get(status_url)
            alerts = await client.get(status_url + "api/v1/alerts")
        assert page.status_code == 200
        assert "execution-failed" in alerts.text
        assert "finops-daytime" in page.text, "the quiet-hours route is on the status page"
        assert "quiet-hours" in page.text
        # The printed token signs in to the page over plain http on loopback.
        async with httpx.AsyncClient() as client:
            signed_in = await client.post(status_url + "signin", data={"token": token})
            assert signed_in.status_code == 303
            attributes = [a.strip().lower() for a in signed_in.headers["Set-Cookie"].split(";")]
            assert "secure" not in attributes
            operator_page = await client.get(status_url)
        assert 'action="/signout"' in operator_page.text

        # The printed token lets a newcomer silence an agent from another shell.
        silenced = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "silences",
            "add",
            "--url",
            status_url,
            'responder="Sales Qualifier"',
            "--duration",
            "1h",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "RELAY_ADMIN_TOKEN": token},
        )
        said, _ = await silenced.communicate()
        assert silenced.returncode == 0, said.decode()
        assert re.match(r"silence sil_\w+ active until ", said.decode())
        async with httpx.AsyncClient() as client:
            listed = (await client.get(status_url + "api/v1/silences")).json()["silences"]
        assert [s["matchers"] for s in listed] == [['responder="Sales Qualifier"']]

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest, _ = await process.communicate()
        assert process.returncode == 0, rest.decode()[-2000:]
        assert "Traceback" not in rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
