"""A real Prometheus (Debian package `prometheus`) scrapes the relay's /metrics on
loopback, and the relay's metrics are read back through Prometheus's HTTP API.

The test takes about 5 s: Prometheus applies discovered targets on a fixed 5 s tick
(not configurable in the Debian version), so the first scrape cannot come sooner."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay import __version__
from tests.http_rig import http_rig
from tests.tools import require_tool

DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_prometheus(tmp_path: Path, *, target: str) -> AsyncIterator[httpx.AsyncClient]:
    """Prometheus scraping `target` (host:port) every 250 ms; yields a client of its API."""
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 250ms\n"
        "  scrape_timeout: 200ms\n"
        "scrape_configs:\n"
        "  - job_name: relay\n"
        "    static_configs:\n"
        f"      - targets: ['{target}']\n"
    )
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            yield client
    except BaseException:
        print(log_path.read_text(errors="replace")[-4000:])  # shown on failure
        raise
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def query_until(
    prometheus: httpx.AsyncClient, promql: str, *, expect: str | None = None
) -> list[dict[str, Any]]:
    """Run an instant query until it returns a result (whose first value is `expect`, if
    given), polling until `DEADLINE_S`: Prometheus starts, then scrapes on its schedule."""
    deadline = time.monotonic() + DEADLINE_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = await prometheus.get("/api/v1/query", params={"query": promql})
        except httpx.TransportError as exc:  # not listening yet
            last = exc
        else:
            last = response.text
            if response.status_code == 200:
                result: list[dict[str, Any]] = response.json()["data"]["result"]
                if result and (expect is None or result[0]["value"][1] == expect):
                    return result
        await asyncio.sleep(0.1)
    pytest.fail(f"Prometheus never answered {promql!r} with {expect or 'a result'}: {last}")


async def test_prometheus_scrapes_the_relay_and_serves_its_metrics(tmp_path: Path) -> None:
    require_tool("prometheus")
    async with http_rig(tmp_path) as rig:
        rig.metrics.on_cycle("prod", "ok", 0.25, None)
        rig.metrics.on_cycle("prod", "ok", 0.5, None)
        rig.metrics.on_cycle("staging", "unauthorized", 0.1, None)
        target = f"127.0.0.1:{rig.server.port}"
        async with running_prometheus(tmp_path, target=target) as prometheus:
            (build,) = await query_until(prometheus, "zaia_relay_build_info")
            assert build["metric"]["version"] == __version__
            assert build["metric"]["job"] == "relay"
            assert build["metric"]["instance"] == target

            ok = 'zaia_relay_poll_cycles_total{source="prod",outcome="ok"}'
            await query_until(prometheus, ok, expect="2")
            unauthorized = 'zaia_relay_poll_cycles_total{source="staging",outcome="unauthorized"}'
            await query_until(prometheus, unauthorized, expect="1")

            # Later scrapes see later values: the relay is scraped live.
            rig.metrics.on_cycle("prod", "ok", 0.3, None)
            await query_until(prometheus, ok, expect="3")
            await query_until(
                prometheus,
                'zaia_relay_poll_duration_seconds_count{source="prod"}',
                expect="3",
            )
            (up,) = await query_until(prometheus, 'up{job="relay"}', expect="1")
            assert up["metric"]["instance"] == target
