"""Polling cost and detection latency against a large simulated workspace.

    .venv/bin/python bench/poll.py [--history 100000] [--running 1000] [--order created]

Starts the simulator as a separate process (so its memory and CPU are not counted),
then runs the relay's engine in this process against it, as a `polling: fixed` source
with every other setting at its shipped default (taken from `SourceSettings`, not
restated here: page_size, max_pages, max_refreshes_per_cycle, list_order, timeouts and
retries), logging as the daemon does (JSON at info, to `--log-file`). Only the poll
interval is shortened (`--interval`, 1 s instead of 15 s) to keep the run short; the
latency target moves with it. As shipped, a fixed first start reads at most `max_pages`
pages (`discovery_pages` is adaptive polling's), so running executions deeper than that
are never tracked: their changes count as never detected. It prints:
- list and per-id requests per steady-state cycle, against the target
  ceil(changed / 100) + 1 list requests and no per-id requests;
- CPU time per 1,000 executions processed (target <= 50 ms);
- peak RSS of the relay (target <= 150 MB);
- p99 latency from a status change in the simulator to the stored transition
  (target <= poll interval + 200 ms), and how many changes were never detected (target 0).

Each figure is printed beside its target, with FAIL where it misses; the exit code is 1
when any does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import Poller
from relay.settings import SourceSettings
from relay.source import ClientConfig, ZaiaClient
from relay.store.sqlite import SqliteStore
from relay.telemetry.logs import configure_logging

API_KEY = "bench-key"


@dataclass
class Verdicts:
    """Figures beside their targets; `failed` once any misses."""

    failed: bool = False

    def check(self, label: str, value: float, target: float, *, unit: str = "") -> None:
        ok = value <= target
        self.failed |= not ok
        mark = "ok" if ok else "FAIL"
        print(f"{label}: {value:g}{unit} (target <= {target:g}{unit}) {mark}")


VERDICTS = Verdicts()


@dataclass
class Counters:
    requests: Counter[str] = field(default_factory=Counter)

    def on_request(self, endpoint: str, _outcome: object) -> None:
        self.requests[endpoint] += 1


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable, "-m", "relay.sim", "--api-key", API_KEY, "--seed", "1",
        "--history", str(args.history), "--running", str(args.running), "--order", args.order,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("SIM_URL="):
        process.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return process, line.removeprefix("SIM_URL=")


class Control:
    """Drives the simulator through its /_sim/ API, as the outside world would."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=30)
        self._rng = rng

    async def running_ids(self) -> list[str]:
        answer = await self._http.get("/_sim/executions", params={"status": "running"})
        answer.raise_for_status()
        ids: list[str] = answer.json()["ids"]
        return ids

    async def change(self, execution_id: str, status: str) -> None:
        answer = await self._http.post(
            f"/_sim/executions/{execution_id}/status", json={"status": status}
        )
        answer.raise_for_status()

    async def create(self) -> str:
        answer = await self._http.post("/_sim/executions", json={"status": "running"})
        answer.raise_for_status()
        new_id: str = answer.json()["id"]
        return new_id

    async def aclose(self) -> None:
        await self._http.aclose()


async def steady_state(
    engine: SourceEngine, control: Control, counters: Counters, args: argparse.Namespace
) -> None:
    rng = random.Random(2)
    print(f"\n== steady state: {args.cycles} cycles, {args.changes} changes each ==")
    print("cycle  changed  list  target  get  observed  cpu_ms  cpu_ms/1000")
    cpu_per_thousand: list[float] = []
    worst_excess = 0
    total_get = 0
    for cycle in range(1, args.cycles + 1):
        running = await control.running_ids()
        finished = rng.sample(running, k=min(len(running), args.changes // 2))
        for execution_id in finished:
            await control.change(execution_id, rng.choice(["completed", "failed", "cancelled"]))
        for _ in range(args.changes - len(finished)):
            await control.create()
        changed = args.changes
        counters.requests.clear()
        cpu_before = time.process_time()
        report = await engine.run_cycle()
        cpu_ms = (time.process_time() - cpu_before) * 1000
        target = math.ceil(changed / 100) + 1
        per_thousand = cpu_ms / max(report.observed, 1) * 1000
        cpu_per_thousand.append(per_thousand)
        worst_excess = max(worst_excess, counters.requests["list"] - target)
        total_get += counters.requests["get"]
        lists, gets = counters.requests["list"], counters.requests["get"]
        print(
            f"{cycle:5}  {changed:7}  {lists:4}  {target:6}  {gets:3}  "
            f"{report.observed:8}  {cpu_ms:6.1f}  {per_thousand:11.1f}"
        )
    VERDICTS.check("list requests over target in the worst cycle", worst_excess, 0)
    VERDICTS.check("per-id requests in all steady-state cycles", total_get, 0)
    median_cpu = round(statistics.median(cpu_per_thousand), 1)
    VERDICTS.check("CPU per 1,000 executions processed (median)", median_cpu, 50, unit=" ms")


async def latency(engine: SourceEngine, control: Control, args: argparse.Namespace) -> list[float]:
    """Status changes at random moments while a poller runs at `--interval`."""
    pending: dict[str, float] = {}
    latencies: list[float] = []

    def on_cycle(_source: str, _outcome: str, _duration: float, report: CycleReport | None) -> None:
        if report is None:
            return
        done = time.monotonic()
        for transition in report.transitions:
            started = pending.pop(transition.execution_id, None)
            if started is not None and transition.kind == "status":
                latencies.append(done - started)

    poller = Poller(
        engine,
        interval_s=args.interval,
        cycle_timeout_s=engine.limits.cycle_timeout.total_seconds(),
        on_cycle=on_cycle,
    )
    task = asyncio.create_task(poller.run(), name="bench-poller")
    rng = random.Random(3)
    running = await control.running_ids()
    targets = rng.sample(running, k=min(len(running), args.samples))
    for execution_id in targets:
        await asyncio.sleep(rng.uniform(0, 2 * args.interval / 3))
        pending[execution_id] = time.monotonic()
        await control.change(execution_id, "failed")
    deadline = time.monotonic() + 10 * args.interval + 30
    while pending and time.monotonic() < deadline:  # noqa: ASYNC110 - a bounded wait in a bench
        await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    VERDICTS.check("changes never detected", len(pending), 0)
    return latencies


def shipped_source(url: str, args: argparse.Namespace) -> SourceSettings:
    """A `polling: fixed` source as the relay ships it; only what the command line
    changes differs from the defaults."""
    return SourceSettings(
        name="bench",
        base_url=url,
        api_key=API_KEY,
        polling="fixed",
        list_order=args.order,
        max_pages=args.max_pages,
    )


async def main(args: argparse.Namespace) -> None:
    process, url = start_simulator(args)
    print(
        f"simulator at {url}: {args.history} executions, {args.running} running, order={args.order}"
    )
    source = shipped_source(url, args)
    limits = ScanLimits.from_settings(source)
    print(
        f"relay: polling fixed, page_size {limits.page_size}, max_pages {limits.max_pages}, "
        f"max_refreshes_per_cycle {limits.max_refreshes_per_cycle}, "
        f"list_order {limits.list_order}, poll interval {args.interval:g}s "
        "(the shipped default is polling: adaptive; bench/cadence.py measures that)"
    )
    counters = Counters()
    control = Control(url, random.Random(1))
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with (
                SqliteStore(Path(folder) / "state.db") as store,
                ZaiaClient(
                    ClientConfig.from_settings(source), on_request=counters.on_request
                ) as client,
            ):
                engine = SourceEngine(limits, client=client, store=store)
                cpu_before, wall_before = time.process_time(), time.monotonic()
                first = await engine.run_cycle()
                print(
                    f"first poll (baseline): {first.pages} pages, {first.observed} executions, "
                    f"{first.running} running tracked, "
                    f"{time.monotonic() - wall_before:.2f} s wall, "
                    f"{(time.process_time() - cpu_before) * 1000:.0f} ms CPU"
                )
                await steady_state(engine, control, counters, args)
                print(f"\n== latency: {args.samples} changes, poll interval {args.interval:g}s ==")
                latencies = sorted(await latency(engine, control, args))
                if latencies:
                    p50 = latencies[len(latencies) // 2]
                    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
                    print(f"detection latency: p50 {p50 * 1000:.0f} ms")
                    target_ms = args.interval * 1000 + 200
                    VERDICTS.check(
                        "detection latency p99", round(p99 * 1000), target_ms, unit=" ms"
                    )
    finally:
        await control.aclose()
        process.terminate()
        process.wait(timeout=10)
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    VERDICTS.check("peak RSS of the relay process", peak_rss_mb, 150, unit=" MB")
    if VERDICTS.failed:
        raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    shipped = SourceSettings.model_fields
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=1_000)
    parser.add_argument(
        "--order", choices=("created", "updated"), default=shipped["list_order"].default
    )
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--max-pages", type=int, default=shipped["max_pages"].default)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--log-file", default=os.devnull, help="where the relay's JSON log goes (at info)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    with open(arguments.log_file, "a") as log_file:
        # As the daemon logs (JSON lines at info): its cost is part of what is measured.
        configure_logging(level="info", fmt="json", stream=log_file)
        asyncio.run(main(arguments))
