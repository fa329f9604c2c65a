"""Delivery faults end to end: `zaia-relay run` as a real subprocess polling the simulator,
delivering to a real webhook receiver on loopback (issue 5, item 8).

- The receiver answers 500 for a while, then recovers: every alert arrives, signed, and
  a duplicate only ever repeats the same `webhook-id` with the same body.
- The receiver answers 429 with `Retry-After: 5`: no request reaches it for 5 s.
- `kill -9` with 1,000 alerts queued: after a restart all 1,000 arrive.
- `kill -9` while a delivery hangs: the restarted relay sends it again within 5 s of its
  start, not after the 85 s lease (issue 13, item 8).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from relay.sim import SimServer, SimWorkspace
from relay.store import OutboxCounts, SqliteStore
from tests.delivery_kit import Received, Receiver, Reply
from tests.relay_process import RelayProcess, alert_failures_to

pytestmark = pytest.mark.slow

KEY = "delivery-faults-key"
SECRET = "whsec_" + base64.b64encode(b"delivery-faults-signing-key-0001").decode()


def write_config(tmp_path: Path, *, sim_url: str, hook_url: str, timeout: str = "2s") -> Path:
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: {KEY}
    poll_interval: 200ms
    request_budget: 600/m
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: 127.0.0.1:0
  shutdown_grace: 5s
log:
  format: json
{
            alert_failures_to(
                hook_url, secret=SECRET, timeout=timeout, retry_initial="200ms", retry_max="1s"
            )
        }"""
    )
    return config


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimWorkspace, str]]:
    workspace = SimWorkspace(api_key=KEY, seed=11)
    for _ in range(5):
        workspace.create_execution()
    async with SimServer(workspace) as server:
        yield workspace, server.url


class Switch:
    """A receiver's answers: `status` (with `headers`) until switched to 204."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.ok: set[str] = set()

    def __call__(self, request: Received) -> Reply:
        if self.status < 300:
            self.ok.add(request.headers["webhook-id"])
            return Reply(204, "")
        return Reply(self.status, "not now", self.headers)


async def wait_for(condition: object, *, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_500_then_recovery_delivers_everything_once_per_id(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    switch = Switch(500)
    async with Receiver(switch) as receiver:
        config = write_config(tmp_path, sim_url=sim_url, hook_url=f"{receiver.url}/hook")
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            failed = [workspace.create_execution(status="failed") for _ in range(20)]
            # The receiver fails for a while: the relay retries, with backoff.
            await receiver.wait_for(8, timeout_s=30)
            switch.status = 204
            await wait_for(lambda: len(switch.ok) >= 20, timeout_s=60, what="20 alerts")
            assert await relay.stop() == 0, relay.tail()
        finally:
            await relay.close()
    assert len(failed) == 20
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for request in receiver.requests:
        payload = Webhook(SECRET).verify(request.body, request.headers)
        assert payload["id"] == request.headers["webhook-id"]
        bodies[request.headers["webhook-id"]].add(request.body)
    assert len(bodies) == 20  # one id per alert, whatever the retries
    assert all(len(versions) == 1 for versions in bodies.values())  # same id, same body
    assert {b["execution"]["id"] for b in (receiver_json(r) for r in receiver.requests)} == set(
        failed
    )
    async with SqliteStore(tmp_path / "state.db") as store:
        assert (await store.outbox_counts()).get("hook", (0, 0)) == (0, 0)


def receiver_json(request: Received) -> dict[str, dict[str, str]]:
    body: dict[str, dict[str, str]] = request.json()
    return body


async def test_429_retry_after_means_no_request_for_5s(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    arrivals: list[float] = []

    def reply(request: Received) -> Reply:
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return Reply(429, "slow down", {"Retry-After": "5"})
        return Reply(204, "")

    async with Receiver(reply) as receiver:
        config = write_config(tmp_path, sim_url=sim_url, hook_url=f"{receiver.url}/hook")
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            workspace.create_execution(status="failed")
            await receiver.wait_for(1, timeout_s=20)
            # More alerts while the sink is paused: they wait for the pause too.
            for _ in range(3):
                workspace.create_execution(status="failed")
            await receiver.wait_for(5, timeout_s=30)
            assert await relay.stop() == 0, relay.tail()
        finally:
            await relay.close()
    refused_at = arrivals[0]
    assert min(arrivals[1:]) - refused_at >= 5.0
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 4


async def test_kill_9_with_1000_queued_then_all_arrive(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    switch = Switch(503)
    async with Receiver(switch) as receiver:
        config = write_config(tmp_path, sim_url=sim_url, hook_url=f"{receiver.url}/hook")
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            failed = {workspace.create_execution(status="failed") for _ in range(1000)}
            async with SqliteStore(tmp_path / "state.db") as store:

                async def queued() -> int:
                    return (await store.outbox_counts()).get("hook", OutboxCounts(0, 0)).pending

                deadline = time.monotonic() + 60
                while await queued() < 1000:
                    assert time.monotonic() < deadline, relay.tail()
                    await asyncio.sleep(0.2)
            await relay.kill()
        finally:
            await relay.close()
        switch.status = 204
        restarted = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await wait_for(lambda: len(switch.ok) >= 1000, timeout_s=90, what="1000 alerts")
            assert await restarted.stop() == 0, restarted.tail()
        finally:
            await restarted.close()
    delivered = {receiver_json(r)["execution"]["id"] for r in receiver.requests}
    assert failed <= delivered
    assert len(switch.ok) == 1000
    async with SqliteStore(tmp_path / "state.db") as store:
        assert (await store.outbox_counts()).get("hook", (0, 0)) == (0, 0)


async def test_kill_9_mid_delivery_is_sent_again_within_5s_of_the_restart(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    # The first delivery hangs (until the receiver closes); later ones are answered.
    receiver = Receiver(lambda _: Reply(204, "", delay_s=0 if receiver.requests else 60))
    async with receiver:
        # The default timeout: a lease of 85 s, which the restart must not wait out.
        config = write_config(
            tmp_path, sim_url=sim_url, hook_url=f"{receiver.url}/hook", timeout="10s"
        )
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            workspace.create_execution(status="failed")
            (in_flight,) = await receiver.wait_for(1, timeout_s=20)
            await relay.kill()
        finally:
            await relay.close()
        started_at = time.time()
        restarted = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await receiver.wait_for(2, timeout_s=10)
            await restarted.wait_for_event("store.leases_released")
            assert await restarted.stop() == 0, restarted.tail()
        finally:
            await restarted.close()
    again = receiver.requests[1]
    assert again.at - started_at < 5.0
    assert again.headers["webhook-id"] == in_flight.headers["webhook-id"]
    assert [e["count"] for e in restarted.named("store.leases_released")] == [1]
    async with SqliteStore(tmp_path / "state.db") as store:
        assert (await store.outbox_counts()).get("hook", (0, 0)) == (0, 0)
