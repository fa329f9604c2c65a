"""`zaia-relay run` as an operator meets it: drains on SIGTERM, dies loudly when it must."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from relay.app import run_daemon
from relay.errors import RelayError
from relay.settings.loader import parse_settings
from relay.sim import SimServer, SimWorkspace
from relay.store.sqlite import SqliteStore
from tests.relay_process import RelayProcess, alert_failures_to

KEY = "daemon-test-key"


class HeldReceiver:
    """A webhook receiver that answers each request only once `release` is set."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.answered: list[str] = []
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False)

    async def handle(self, request: web.Request) -> web.Response:
        self.started.set()
        await self.release.wait()
        self.answered.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def config_text(tmp_path: Path, *, sim_url: str, hook_url: str, listen: str) -> str:
    return f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: {KEY}
    poll_interval: 200ms
    request_budget: 600/m
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: {listen}
  shutdown_grace: 10s
log:
  format: json
{alert_failures_to(hook_url)}"""


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimWorkspace, str]]:
    workspace = SimWorkspace(api_key=KEY, seed=9)
    workspace.create_execution()
    async with SimServer(workspace) as server:
        yield workspace, server.url


@pytest.mark.slow
async def test_sigterm_lets_the_delivery_in_flight_finish(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    receiver = HeldReceiver()
    async with receiver as hook_url:
        config = tmp_path / "relay.yaml"
        config.write_text(
            config_text(tmp_path, sim_url=sim_url, hook_url=hook_url, listen="127.0.0.1:0")
        )
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            async with asyncio.timeout(20):
                await receiver.started.wait()
            stopped = asyncio.create_task(relay.stop())
            # The answer comes only once the relay is shutting down: the request is in
            # flight when the drain begins, however slow or fast the machine.
            await relay.wait_for_event("relay.stopping")
            receiver.release.set()
            assert await stopped == 0, relay.tail()
        finally:
            await relay.close()
    assert len(receiver.answered) == 1, "the request in flight was allowed to finish"
    async with SqliteStore(tmp_path / "state.db") as store:
        counts = await store.outbox_counts()
    assert counts.get("hook", (0, 0)) == (0, 0), "and it was recorded as delivered"


@pytest.mark.slow
async def test_a_taken_port_ends_the_relay_with_an_error(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    _, sim_url = sim
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "relay.yaml"
        config.write_text(
            config_text(
                tmp_path,
                sim_url=sim_url,
                hook_url="http://127.0.0.1:9/x",
                listen=f"127.0.0.1:{port}",
            )
        )
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            code = await relay.wait()
        finally:
            await relay.close()
    assert code == 1
    assert "address already in use" in relay.tail().lower()


async def test_a_task_that_ends_unexpectedly_stops_the_relay(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    _, sim_url = sim
    settings = parse_settings(
        config_text(
            tmp_path, sim_url=sim_url, hook_url="http://127.0.0.1:9/x", listen="127.0.0.1:0"
        ),
        environ={},
    )

    async def returns_early() -> None:
        await asyncio.sleep(0.1)

    with pytest.raises(ExceptionGroup) as caught:
        await run_daemon(settings, extra_tasks={"quitter": returns_early})
    assert caught.group_contains(RelayError, match="quitter ended unexpectedly")


async def test_a_task_that_crashes_stops_the_relay(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    _, sim_url = sim
    settings = parse_settings(
        config_text(
            tmp_path, sim_url=sim_url, hook_url="http://127.0.0.1:9/x", listen="127.0.0.1:0"
        ),
        environ={},
    )

    async def crashes() -> None:
        await asyncio.sleep(0.1)
        raise RuntimeError("boom")

    with pytest.raises(ExceptionGroup) as caught:
        await run_daemon(settings, extra_tasks={"crasher": crashes})
    assert caught.group_contains(RuntimeError, match="boom")
