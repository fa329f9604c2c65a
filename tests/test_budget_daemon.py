"""The request budget at the API, end to end: `zaia-relay run` (adaptive polling) as a
real subprocess against the simulator on loopback, every API request timed on arrival
there (list pages, reads by id, nestings and retries alike).

One run tells the whole story, in order:
1. a first start (top, then the sweep down the list), then a burst of new executions
   that makes the top scan read several pages back to back: the gate must space them;
2. one answer `429` with `Retry-After: 2`: nothing reaches the API for 2 s, the rate
   the relay allows itself (`zaia_relay_request_rate_per_minute`) drops, then climbs
   back to the budget's as calls succeed;
3. a failure made after that is still alerted to a webhook receiver: nothing stalled.

The budget is 240/m so that the whole run takes seconds: one request per 0.25 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from relay.http.runner import ServedApp, serve_app
from relay.sim import Fault, SimServer, SimWorkspace, utcnow
from tests.relay_process import RelayProcess, alert_failures_to

pytestmark = pytest.mark.slow

KEY = "zk_live_budget_e2e_5d4c3b2a19f8e7d6"
BUDGET_PER_MINUTE = 240
PACE_S = 60.0 / BUDGET_PER_MINUTE
RETRY_AFTER_S = 2
# How much the delay between the relay sending a request and the simulator timing its
# arrival may vary (two busy event loops on one machine). A bound on any window is
# "budget x window + 1", widened by this much; removing the gate breaks it by far (the
# pages of a top scan would arrive milliseconds apart, not a pace apart).
ARRIVAL_JITTER_S = 0.15
RATE_METRIC = "zaia_relay_request_rate_per_minute"
BUDGET_METRIC = "zaia_relay_request_budget_per_minute"


@dataclass(frozen=True, slots=True)
class Arrival:
    at_s: float  # time.monotonic() in this process, taken before the answer is made
    kind: str  # "list", "get" or "nestings"
    status: int


class TimedSim(SimServer):
    """The simulated API on loopback; every API request's arrival is recorded (the
    `/_sim/` control API is not mounted: the test drives the workspace directly)."""

    def __init__(self, workspace: SimWorkspace) -> None:
        super().__init__(workspace, control=False, on_api_request=self._record)
        self.arrivals: list[Arrival] = []
        self.changed = asyncio.Event()

    def _record(self, request: web.Request, status: int, arrived_s: float) -> None:
        self.arrivals.append(Arrival(arrived_s, _kind(request.path), status))
        self.changed.set()

    async def wait_for(self, condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not condition():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for: {what}") from None


def _kind(path: str) -> str:
    if path == "/api/v1/executions":
        return "list"
    return "nestings" if path.endswith("/nestings") else "get"


class Receiver:
    """A webhook receiver on loopback: keeps every body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        self._served: ServedApp | None = None

    async def __aenter__(self) -> str:
        async def hook(request: web.Request) -> web.Response:
            self.bodies.append(await request.json())
            self._arrived.set()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._served = await serve_app(app, host="127.0.0.1", port=0, shutdown_timeout_s=2.0)
        return f"http://127.0.0.1:{self._served.port}/hook"

    async def __aexit__(self, *_exc: object) -> None:
        if self._served is not None:
            await self._served.stop()

    def alerted(self, execution_id: str) -> bool:
        return any((b.get("execution") or {}).get("id") == execution_id for b in self.bodies)

    async def wait_for_alert(self, execution_id: str, *, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not self.alerted(execution_id):
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(f"no alert about {execution_id}: {self.bodies}") from None


class Metrics:
    """Scrapes the relay's /metrics."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=5.0)
        self.seen: list[float] = []

    async def value(self, name: str) -> float:
        """The sample `name` of source "prod"."""
        answer = await self._http.get("/metrics")
        answer.raise_for_status()
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("source") == "prod":
                    return float(sample.value)
        raise AssertionError(f"{name} is not exposed")

    async def rate_per_minute(self) -> float:
        rate = await self.value(RATE_METRIC)
        self.seen.append(rate)
        return rate

    async def wait_for_rate(
        self, condition: Callable[[float], bool], *, timeout_s: float, what: str
    ) -> float:
        """Scrape until `condition(rate)` holds. The gauge changes with no event to wait
        on, so it is read every 50 ms (its changes last several hundred)."""
        try:
            async with asyncio.timeout(timeout_s):
                # A gauge has no event to await: reading it is the wait.
                while not condition(rate := await self.rate_per_minute()):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                return rate
        except TimeoutError:
            raise AssertionError(f"timed out waiting for: {what}; seen {self.seen}") from None

    async def aclose(self) -> None:
        await self._http.aclose()


def config_text(tmp_path: Path, *, sim_url: str, hook_url: str) -> str:
    return f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: ${{ZAIA_API_KEY}}
    polling: adaptive
    request_budget: {BUDGET_PER_MINUTE}/m
    poll_interval: 5s
    page_size: 10
store:
  url: sqlite:///{tmp_path}/state.db
server:
  listen: 127.0.0.1:0
log:
  format: json
{alert_failures_to(hook_url)}"""


def workspace_with_depth() -> tuple[SimWorkspace, str, str]:
    """About seven pages of ten: ended history over the last hour, running executions
    at the top, in the middle and alone near the bottom (read by id), and a running
    parent with a running child at the top. Returns the workspace, parent and child."""
    workspace = SimWorkspace(api_key=KEY, seed=11)
    workspace.seed_history(55, running=0, child_ratio=0.0, span_s=3600.0)
    now = utcnow()
    for minutes_ago in (50, 25, 24, 5):
        workspace.create_execution(created_at=now - timedelta(minutes=minutes_ago))
    parent = workspace.create_execution(kind="agent")
    child = workspace.spawn_child(parent, kind="agent")
    return workspace, parent, child


def most_in_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any window [t, t + window_s) (t at an arrival)."""
    most, start = 0, 0
    for end, at_s in enumerate(times):
        while times[start] <= at_s - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


async def test_the_budget_holds_at_the_api_through_a_burst_and_a_429(tmp_path: Path) -> None:
    workspace, parent, child = workspace_with_depth()
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(TimedSim(workspace))
        receiver = Receiver()
        hook_url = await stack.enter_async_context(receiver)
        config = tmp_path / "relay.yaml"
        config.write_text(config_text(tmp_path, sim_url=sim.url, hook_url=hook_url))
        relay = await RelayProcess.start(["run", "-c", str(config)], env={"ZAIA_API_KEY": KEY})
        stack.push_async_callback(relay.close)
        await relay.wait_for_event("relay.started")
        metrics = Metrics(relay.named("relay.started")[0]["http"])
        stack.push_async_callback(metrics.aclose)

        # 1. The first start: the top, then the sweep finds every running execution.
        await relay.wait_for_event("poll.sweep_done", timeout_s=15)
        # A burst: 25 new executions push known history down to the third page, so
        # the next top scan reads three pages in a row.
        for _ in range(25):
            workspace.create_execution()
        await relay.wait_until(
            lambda: any(e.get("pages", 0) >= 3 for e in relay.named("poll.done")),
            what="a top scan of three pages or more",
        )
        full_rate = await metrics.rate_per_minute()
        # Not throttled yet: the whole budget (less the second of margin the gate counts).
        assert await metrics.value(BUDGET_METRIC) == BUDGET_PER_MINUTE
        assert full_rate == pytest.approx(BUDGET_PER_MINUTE, rel=0.02)

        # 2. One 429 with Retry-After, whichever request meets it.
        workspace.inject_fault(Fault(kind="retry_after", retry_after=str(RETRY_AFTER_S)))
        await sim.wait_for(
            lambda: any(a.status == 429 for a in sim.arrivals), timeout_s=5, what="a 429"
        )
        await relay.wait_until(
            lambda: any("429" in e.get("reason", "") for e in relay.named("source.retry")),
            what="the relay's retry of the 429",
        )
        lowest = await metrics.wait_for_rate(
            lambda rate: rate < full_rate, timeout_s=10, what="the allowed rate to drop"
        )
        await metrics.wait_for_rate(
            lambda rate: rate >= full_rate, timeout_s=10, what="the allowed rate to climb back"
        )

        # 3. A failure made afterwards is alerted: the parent fails because its child did.
        workspace.set_status(child, "failed", error="tool call timed out")
        workspace.set_status(parent, "failed")
        await receiver.wait_for_alert(parent, timeout_s=10)
        assert await relay.stop() == 0, relay.tail()
        output = "\n".join([*map(str, relay.events), *relay.other_lines])

    arrivals = sorted(sim.arrivals, key=lambda a: a.at_s)
    times = [a.at_s for a in arrivals]
    kinds = {a.kind for a in arrivals}
    summary = f"{len(times)} requests {sorted(kinds)} over {times[-1] - times[0]:.1f}s"

    # (a) The budget holds at the API: no rolling minute holds more than the budget and,
    # since the run is shorter than a minute, what bites: no shorter window holds more
    # than its share of the budget plus the one request at its edge.
    assert most_in_window(times, 60.0) <= BUDGET_PER_MINUTE, summary
    for window_s in (0.5, 1.0, 2.0, 5.0):
        allowed = math.floor((window_s + ARRIVAL_JITTER_S) / PACE_S) + 1
        assert most_in_window(times, window_s) <= allowed, (window_s, summary)
    # Every kind of request was counted: list pages, reads by id, nestings.
    assert kinds == {"list", "get", "nestings"}, summary

    # (b) Nothing reached the API for Retry-After seconds after the 429...
    limited = next(i for i, a in enumerate(arrivals) if a.status == 429)
    assert [a.status for a in arrivals].count(429) == 1
    gap_s = arrivals[limited + 1].at_s - arrivals[limited].at_s
    assert gap_s >= RETRY_AFTER_S, f"the next request came {gap_s:.3f}s after the 429"
    # ...the allowed rate dropped to about half (each success then climbs it back by a
    # twentieth of the budget), which shows at the API too: the five requests after the
    # retry came at least a quarter slower than the budget's pace...
    assert lowest < full_rate
    assert min(metrics.seen) <= full_rate * 0.65, metrics.seen
    slowed_s = arrivals[limited + 6].at_s - arrivals[limited + 1].at_s
    assert slowed_s >= 5 * PACE_S * 1.25 - ARRIVAL_JITTER_S, f"{slowed_s:.3f}s for 5 requests"
    # ...and it climbed back to the whole budget while requests went on succeeding.
    assert all(a.status == 200 for a in arrivals[limited + 1 :]), summary

    # (c) The failure made after the climb was alerted: the relay did not stall.
    assert receiver.alerted(parent)
    assert KEY not in output, "the API key never reaches the log"
