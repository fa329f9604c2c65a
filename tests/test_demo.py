"""`zaia-relay demo` as a newcomer runs it: alerts within seconds, Ctrl-C exits cleanly."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

import httpx
import pytest

pytestmark = pytest.mark.slow

FIRST_ALERT_WITHIN_S = 10.0


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
        first = await read_until(
            process.stdout, r"firing\s+execution-failed", timeout_s=FIRST_ALERT_WITHIN_S, seen=seen
        )
        assert "Call CRM API" in first, "the alert names the failing step"
        await read_until(process.stdout, r"firing\s+execution-cancelled", timeout_s=15, seen=seen)
        async with httpx.AsyncClient() as client:
            page = await client.get(status_url)
            alerts = await client.get(status_url + "api/v1/alerts")
        assert page.status_code == 200
        assert "execution-failed" in alerts.text

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            rest, _ = await process.communicate()
        assert process.returncode == 0, rest.decode()[-2000:]
        assert "Traceback" not in rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
