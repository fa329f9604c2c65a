"""Polling cost, coverage and detection latency against a large simulated workspace.

    .venv/bin/python bench/poll.py [--polling adaptive|fixed] [--budget N] [--interval S]
                                   [--history 100000] [--running 1000] [--order created]

Starts the simulator as a separate process (`python -m relay.sim`, so its memory and CPU
are not counted): 100,000 executions of history, of which 1,000 of the 2,000 newest roots
still run (about 1,050 with their running children, over 23 pages of 100), listed newest
created first. The relay runs in this process, built by `relay.app.build_runtime` from
settings parsed by the relay's own loader that set only what a bench must (the simulator's
URL and key, a SQLite store in a temporary directory): every other setting is the shipped
default, unless a flag says otherwise (the flags in effect are printed first). No rules and
no sinks: this measures polling. The bench listens where the relay's metrics do (every
request the client makes, every cycle the poller ends); the simulator is driven from a
thread of its own, whose CPU is taken out of the relay's.

`--polling adaptive` (the default: poll_interval 15s and discovery_pages 50 as shipped,
request_budget 120/m) runs the relay's poll loop, `AdaptivePoller`, and measures:
- the first start (until `poll.sweep_done`): running executions in the simulator that the
  relay does not track afterwards (target 0), and alertable transitions it produced while
  nothing changed (target 0: a first start records a baseline);
- then `--seconds` (120) of churn at random moments: `--endings` (100) running roots end
  (completed, failed or cancelled) and `--arrivals` (100) new executions start, then at
  most 60 s more until every change is seen. Changes never detected as an alertable status
  transition (target 0) and detected more than once (target 0); detection latency, from
  the change in the simulator to the committed transition, p99 of endings and of arrivals
  (target <= poll_interval, the worst-case bound);
- the most requests the client made in any 60 s window over the whole run (target <= the
  budget); relay CPU per 1,000 executions processed in steady state (target <= 50 ms);
- what the bound would take at the end: the reads one poll_interval needs (the top, each
  page holding two or more running executions, each one alone on its page) and the budget
  they make, as README "Choosing a budget" counts it.
The budget is the one README "Choosing a budget" sizes for this workspace (the top and
23 pages of running executions, each read every 15 s: 96/m; 120/m leaves room for the
pages arrivals push the set over), not the shipped 60/m: at 60/m no cadence can read a
thousand running executions within 15 s, and the relay says so (`poll.over_budget`).

`--polling fixed` is the 0.1 measurement (poll_interval 1s): the first poll, then
`--cycles` (8) steady-state cycles of `--changes` (60) changes each run one by one, with
list and per-id requests per cycle against ceil(changed / 100) + 1 list requests and no
per-id request, CPU per 1,000 executions processed (target <= 50 ms); then `--samples`
(100) status changes at random moments while the poller runs: changes never detected
(target 0) and p99 latency (target <= poll_interval + 200 ms).

Both: peak RSS of this process (target <= 150 MB). Each figure is printed beside its
target with `ok` or `FAIL` (figures without a target say so); the exit code is 1 when any
target is missed. The default run takes about four minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import math
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from flags import non_default_flags  # bench/, run as a script
from rig import max_in_window

from relay.app import Runtime, build_runtime
from relay.pipeline import CycleReport, SourceEngine, SourceHealth
from relay.settings import Settings
from relay.settings.loader import parse_settings
from relay.telemetry import RelayMetrics, configure_logging

API_KEY = "bench-key"
SOURCE = "bench"
PAGE_SIZE = 100
ADAPTIVE_BUDGET_PER_MINUTE = 120
ENDINGS = ("completed", "failed", "cancelled")
Key = tuple[str, str]  # (execution id, status it went into)
T = TypeVar("T")


@dataclass
class Verdicts:
    """Figures beside their targets; `failed` once any misses."""

    failed: bool = False

    def check(self, label: str, value: float, target: float, *, unit: str = "") -> None:
        ok = value <= target
        self.failed |= not ok
        mark = "ok" if ok else "FAIL"
        print(f"{label}: {value:g}{unit} (target <= {target:g}{unit}) {mark}")

    @staticmethod
    def info(label: str, text: str) -> None:
        print(f"{label}: {text} (no target)")


VERDICTS = Verdicts()


# --- the simulator, and what drives it --------------------------------------------------


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

    def __init__(self, url: str) -> None:
        self._http = httpx.AsyncClient(base_url=url, timeout=30)

    async def running_ids(self, *, roots_only: bool = False) -> list[str]:
        params = {"status": "running", "roots_only": "true" if roots_only else "false"}
        answer = await self._http.get("/_sim/executions", params=params)
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

    async def page_ids(self, number: int) -> list[str]:
        """One page of the API's list, as the relay reads it (not counted as the relay's)."""
        answer = await self._http.get(
            "/api/v1/executions",
            params={"pageNumber": number, "pageSize": PAGE_SIZE},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        answer.raise_for_status()
        return [item["id"] for item in answer.json()]

    async def aclose(self) -> None:
        await self._http.aclose()


class Driver:
    """A thread with its own event loop, where `Control` runs: the simulator is driven
    at the moments the bench chooses, and its CPU is not the relay's."""

    def __init__(self, url: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-driver")
        self._thread.start()
        self.control: Control = self.call(self._make_control(url)).result()

    @staticmethod
    async def _make_control(url: str) -> Control:
        return Control(url)

    def call(self, coroutine: Coroutine[Any, Any, T]) -> Any:
        """Run `coroutine` on the driver's loop; a concurrent future of its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await, from the relay's loop, `coroutine` run on the driver's."""
        result: T = await asyncio.wrap_future(self.call(coroutine))
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self.control.aclose()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


# --- what the relay does, as the bench sees it ------------------------------------------


class EventLog(io.TextIOBase):
    """The relay's log stream (JSON lines, as the daemon writes them): keeps the events
    the bench waits for or reports, drops the rest."""

    KEPT = ("poll.sweep_done", "poll.over_budget")

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.sweep_done = asyncio.Event()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if '"level": "info"' in line and not any(name in line for name in self.KEPT):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                self.events.append(event)
                if event.get("event") == "poll.sweep_done":
                    self.sweep_done.set()
        return len(text)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]


@dataclass
class Tap:
    """Listens where the relay's metrics listen: `api_request` (every attempt the client
    makes, reported as its answer arrives) and `on_cycle` (every cycle the poller ends)."""

    health: SourceHealth
    request_times: list[float] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    seen: dict[Key, list[tuple[float, bool]]] = field(default_factory=dict)
    observed: int = 0
    alertable: int = 0
    max_staleness_s: float = 0.0
    over_budget_cycles: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def attach(self, metrics: RelayMetrics) -> None:
        api_request, on_cycle = metrics.api_request, metrics.on_cycle

        def on_request(source: str, endpoint: str, code: int | str) -> None:
            api_request(source, endpoint, code)
            self.request_times.append(time.monotonic())
            self.requests[endpoint] += 1

        def on_cycle_too(
            source: str, outcome: Any, duration_s: float, report: CycleReport | None
        ) -> None:
            on_cycle(source, outcome, duration_s, report)
            self._cycle(outcome, report)

        metrics.api_request = on_request  # type: ignore[method-assign]
        metrics.on_cycle = on_cycle_too  # type: ignore[method-assign]

    def _cycle(self, outcome: str, report: CycleReport | None) -> None:
        self.outcomes[outcome] += 1
        self.max_staleness_s = max(self.max_staleness_s, self.health.staleness_s)
        self.over_budget_cycles += self.health.over_budget
        if report is None:
            return
        now = time.monotonic()
        self.observed += report.observed
        for transition in report.transitions:
            if transition.kind != "status":
                continue
            key = (transition.execution_id, transition.to_status)
            self.seen.setdefault(key, []).append((now, transition.alertable))
            self.alertable += transition.alertable
        if report.transitions:
            self.changed.set()

    def detected_at(self, key: Key) -> float | None:
        """When the change was first seen as an alertable status transition."""
        return next((at for at, alertable in self.seen.get(key, ()) if alertable), None)

    def reset_steady(self) -> None:
        self.requests.clear()
        self.outcomes.clear()
        self.max_staleness_s = 0.0
        self.over_budget_cycles = 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"


# --- adaptive (the default) --------------------------------------------------------------


async def churn(
    control: Control, args: argparse.Namespace
) -> tuple[dict[Key, float], dict[Key, float], float]:
    """On the driver's thread: endings of running roots and new executions at random
    moments over `--seconds`. Returns when each change was made, and the CPU it took."""
    cpu_before = time.thread_time()
    rng = random.Random(2)
    roots = await control.running_ids(roots_only=True)
    victims = rng.sample(roots, k=min(len(roots), args.endings))
    moments = sorted(
        [(rng.uniform(0, args.seconds), "end") for _ in victims]
        + [(rng.uniform(0, args.seconds), "new") for _ in range(args.arrivals)]
    )
    endings: dict[Key, float] = {}
    arrivals: dict[Key, float] = {}
    began = time.monotonic()
    for at_s, kind in moments:
        await asyncio.sleep(max(0.0, began + at_s - time.monotonic()))
        if kind == "end":
            victim, status = victims.pop(), rng.choice(ENDINGS)
            endings[(victim, status)] = time.monotonic()
            await control.change(victim, status)
        else:
            made_at = time.monotonic()
            arrivals[(await control.create(), "running")] = made_at
    return endings, arrivals, time.thread_time() - cpu_before


async def bound_needs(control: Control, *, running: set[str]) -> tuple[int, int, int]:
    """The reads one poll_interval takes for the running executions where the list has
    them now: the top, the pages below it holding two or more, each one alone on a page."""
    pages, singles, number, left = 0, 0, 2, set(running) - set(await control.page_ids(1))
    while left:
        ids = await control.page_ids(number)
        if not ids:
            break
        here = left.intersection(ids)
        left -= here
        pages += len(here) >= 2
        singles += len(here) == 1
        number += 1
    return 1 + pages + singles, pages, singles + len(left)


async def wait_detected(tap: Tap, keys: list[Key], *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(tap.detected_at(key) is None for key in keys):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        tap.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tap.changed.wait(), remaining)


def judge_latency(tap: Tap, label: str, made: dict[Key, float], *, bound_s: float) -> None:
    latencies = [at - made[key] for key in made if (at := tap.detected_at(key)) is not None]
    VERDICTS.check(f"{label} never detected", len(made) - len(latencies), 0)
    duplicates = sum(max(0, len(tap.seen.get(key, ())) - 1) for key in made)
    VERDICTS.check(f"{label} detected more than once", duplicates, 0)
    if not latencies:
        return
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(f"{label} detection latency: p50 {p50:.1f} s, max {max(latencies):.1f} s")
    VERDICTS.check(f"{label} detection latency p99", round(p99, 1), bound_s, unit=" s")


async def run_adaptive(
    runtime: Runtime, tap: Tap, events: EventLog, driver: Driver, args: argparse.Namespace
) -> None:
    source = runtime.settings.sources[0]
    poller = runtime.pollers[0]
    budget = source.budget_per_minute or math.inf
    bound_s = source.poll_interval.total_seconds()
    began = time.monotonic()
    task = asyncio.create_task(poller.run(), name="bench-poller")
    try:
        sweep_s = source.discovery_pages / (budget / 2) * 60  # the sweep's share of the budget
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(events.sweep_done.wait(), 2 * sweep_s + 120)
        first_start_s = time.monotonic() - began
        # What the relay tracks: its committed state (the engine's copy is not there while
        # a read is in flight).
        tracked = {state.id for state in await runtime.store.running_states(source.name)}
        running = set(await driver.run(driver.control.running_ids()))
        print(f"\n== first start: until poll.sweep_done ({first_start_s:.0f} s) ==")
        print(
            f"{len(tap.request_times)} requests ({counts(tap.requests)}); "
            f"{len(tracked)} tracked, {len(running)} running in the simulator"
        )
        if not events.sweep_done.is_set():
            print(f"FAIL: no poll.sweep_done within {first_start_s:.0f} s")
            VERDICTS.failed = True
        untracked = len(running - tracked)
        VERDICTS.check("running executions not tracked after the first start", untracked, 0)
        VERDICTS.check("alertable transitions during the first start", tap.alertable, 0)

        print(
            f"\n== steady state: {args.seconds:g} s, {args.endings} endings and "
            f"{args.arrivals} arrivals at random moments =="
        )
        tap.reset_steady()
        requests_before, observed_before = len(tap.request_times), tap.observed
        cpu_before, steady_began = time.process_time(), time.monotonic()
        endings, arrivals, driver_cpu_s = await driver.run(churn(driver.control, args))
        await wait_detected(tap, [*endings, *arrivals], timeout_s=max(60.0, 3 * bound_s))
        steady_s = time.monotonic() - steady_began
        cpu_ms = (time.process_time() - cpu_before - driver_cpu_s) * 1000
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    requests = len(tap.request_times) - requests_before
    observed = tap.observed - observed_before
    print(
        f"{steady_s:.0f} s: {requests} requests ({counts(tap.requests)}), "
        f"{requests / steady_s * 60:.1f} a minute; {observed} executions processed; "
        f"cycles: {counts(tap.outcomes)}"
    )
    judge_latency(tap, "endings", endings, bound_s=bound_s)
    judge_latency(tap, "arrivals", arrivals, bound_s=bound_s)
    window = max_in_window(tap.request_times, 60.0)
    VERDICTS.check("most requests in any 60 s window (whole run)", window, budget)
    VERDICTS.check(
        "relay CPU per 1,000 executions processed",
        round(cpu_ms / max(observed, 1) * 1000, 1),
        50,
        unit=" ms",
    )
    VERDICTS.info("relay CPU per request", f"{cpu_ms / max(requests, 1):.2f} ms")
    health = poller.health
    VERDICTS.info(
        "the relay's own view",
        f"longest unread {tap.max_staleness_s:.1f} s, over budget in "
        f"{tap.over_budget_cycles} of {sum(tap.outcomes.values())} reads, "
        f"rate {health.rate_per_minute or 0:.0f}/m, "
        f"{len(events.named('poll.over_budget'))} poll.over_budget warnings",
    )
    still = set(await driver.run(driver.control.running_ids()))
    reads, pages, singles = await driver.run(bound_needs(driver.control, running=still))
    VERDICTS.info(
        f"reads the {bound_s:g} s bound needs now",
        f"{reads} (the top, {pages} pages, {singles} alone on a page) = "
        f"{reads * 60 / bound_s:.0f} requests a minute, budget {budget:g}/m",
    )


# --- fixed (0.1's polling) --------------------------------------------------------------


async def fixed_steady(
    engine: SourceEngine, driver: Driver, tap: Tap, args: argparse.Namespace
) -> None:
    rng = random.Random(2)
    control = driver.control
    print(f"\n== steady state: {args.cycles} cycles, {args.changes} changes each ==")
    print("cycle  changed  list  target  get  observed  cpu_ms  cpu_ms/1000")
    cpu_per_thousand: list[float] = []
    worst_excess = 0
    total_get = 0
    for cycle in range(1, args.cycles + 1):
        running = await driver.run(control.running_ids())
        finished = rng.sample(running, k=min(len(running), args.changes // 2))
        for execution_id in finished:
            await driver.run(control.change(execution_id, rng.choice(ENDINGS)))
        for _ in range(args.changes - len(finished)):
            await driver.run(control.create())
        changed = args.changes
        tap.requests.clear()
        cpu_before = time.process_time()
        report = await engine.run_cycle()
        cpu_ms = (time.process_time() - cpu_before) * 1000
        target = math.ceil(changed / 100) + 1
        per_thousand = cpu_ms / max(report.observed, 1) * 1000
        cpu_per_thousand.append(per_thousand)
        worst_excess = max(worst_excess, tap.requests["list"] - target)
        total_get += tap.requests["get"]
        lists, gets = tap.requests["list"], tap.requests["get"]
        print(
            f"{cycle:5}  {changed:7}  {lists:4}  {target:6}  {gets:3}  "
            f"{report.observed:8}  {cpu_ms:6.1f}  {per_thousand:11.1f}"
        )
    VERDICTS.check("list requests over target in the worst cycle", worst_excess, 0)
    VERDICTS.check("per-id requests in all steady-state cycles", total_get, 0)
    median_cpu = round(statistics.median(cpu_per_thousand), 1)
    VERDICTS.check("CPU per 1,000 executions processed (median)", median_cpu, 50, unit=" ms")


async def run_fixed(runtime: Runtime, tap: Tap, driver: Driver, args: argparse.Namespace) -> None:
    engine, poller = runtime.engines[0], runtime.pollers[0]
    interval_s = runtime.settings.sources[0].poll_interval.total_seconds()
    cpu_before, wall_before = time.process_time(), time.monotonic()
    first = await engine.run_cycle()
    print(
        f"first poll (baseline): {first.pages} pages, {first.observed} executions, "
        f"{first.running} running tracked, "
        f"{time.monotonic() - wall_before:.2f} s wall, "
        f"{(time.process_time() - cpu_before) * 1000:.0f} ms CPU"
    )
    await fixed_steady(engine, driver, tap, args)
    print(f"\n== latency: {args.samples} changes, poll interval {interval_s:g}s ==")
    task = asyncio.create_task(poller.run(), name="bench-poller")
    rng = random.Random(3)
    running = await driver.run(driver.control.running_ids())
    made: dict[Key, float] = {}
    for execution_id in rng.sample(running, k=min(len(running), args.samples)):
        await asyncio.sleep(rng.uniform(0, 2 * interval_s / 3))
        made[(execution_id, "failed")] = time.monotonic()
        await driver.run(driver.control.change(execution_id, "failed"))
    await wait_detected(tap, list(made), timeout_s=10 * interval_s + 30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    latencies = sorted(at - made[key] for key in made if (at := tap.detected_at(key)) is not None)
    VERDICTS.check("changes never detected", len(made) - len(latencies), 0)
    if latencies:
        print(f"detection latency: p50 {percentile(latencies, 0.5) * 1000:.0f} ms")
        p99_ms = round(percentile(latencies, 0.99) * 1000)
        VERDICTS.check("detection latency p99", p99_ms, interval_s * 1000 + 200, unit=" ms")


# --- main --------------------------------------------------------------------------------


def settings_for(args: argparse.Namespace, *, url: str, folder: Path) -> Settings:
    """The relay's settings, through its own loader: what a bench must set, the flags
    given, and every other setting at its shipped default."""
    lines = [
        f"  - name: {SOURCE}",
        f"    base_url: {url}",
        f"    api_key: {API_KEY}",
        f"    polling: {args.polling}",
        f"    list_order: {args.order}",
    ]
    interval = args.interval if args.interval is not None or args.polling == "adaptive" else 1.0
    if interval is not None:
        lines.append(f"    poll_interval: {interval:g}s")
    budget = args.budget
    if budget is None and args.polling == "adaptive":
        budget = ADAPTIVE_BUDGET_PER_MINUTE
    if budget is not None:
        lines.append(f"    request_budget: {budget:g}/m")
    if args.max_pages is not None:
        lines.append(f"    max_pages: {args.max_pages}")
    text = "sources:\n" + "\n".join(lines) + f"\nstore:\n  url: sqlite:///{folder}/state.db\n"
    return parse_settings(text, environ={})


async def main(args: argparse.Namespace, flags: list[str]) -> None:
    began = time.monotonic()
    print(f"flags: {' '.join(flags) if flags else 'none (the default run)'}")
    process, url = start_simulator(args)
    print(
        f"simulator at {url}: {args.history} executions, {args.running} running roots, "
        f"order={args.order}"
    )
    driver = Driver(url)
    events = EventLog()
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = settings_for(args, url=url, folder=Path(folder))
            source = settings.sources[0]
            budget = source.budget_per_minute
            print(
                f"relay: polling {source.polling}, request_budget "
                f"{'none' if budget is None else f'{budget:g}/m'}, poll_interval "
                f"{source.poll_interval.total_seconds():g}s, discovery_pages "
                f"{source.discovery_pages}, max_pages {source.max_pages}, page_size "
                f"{source.page_size}"
            )
            configure_logging(level=settings.log.level, fmt="json", stream=events)
            async with build_runtime(settings) as runtime:
                gc.freeze()  # as `run_daemon` does once start-up is built
                tap = Tap(runtime.pollers[0].health)
                tap.attach(runtime.metrics)
                if args.polling == "adaptive":
                    await run_adaptive(runtime, tap, events, driver, args)
                else:
                    await run_fixed(runtime, tap, driver, args)
    finally:
        driver.close()
        process.terminate()
        process.wait(timeout=10)
    loud = Counter(f"{e.get('level')} {e.get('event')}" for e in events.events)
    loud = Counter({name: n for name, n in loud.items() if not name.startswith("info ")})
    if loud:
        print(f"relay log lines above info: {counts(loud)}")
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    VERDICTS.check("peak RSS of the relay process", peak_rss_mb, 150, unit=" MB")
    verdict = "FAIL" if VERDICTS.failed else "all targets met"
    print(f"\nwall time {time.monotonic() - began:.0f} s; {verdict}")
    if VERDICTS.failed:
        raise SystemExit(1)


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--polling", choices=("adaptive", "fixed"), default="adaptive")
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=1_000)
    parser.add_argument("--order", choices=("created", "updated"), default="created")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"request_budget a minute (default: {ADAPTIVE_BUDGET_PER_MINUTE} when adaptive, "
        "shipped when fixed)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="poll_interval in seconds (default: shipped when adaptive, 1 when fixed)",
    )
    parser.add_argument("--max-pages", type=int, default=None, help="(default: shipped)")
    adaptive = parser.add_argument_group("adaptive")
    adaptive.add_argument("--seconds", type=float, default=120.0, help="of churn")
    adaptive.add_argument("--endings", type=int, default=100)
    adaptive.add_argument("--arrivals", type=int, default=100)
    fixed = parser.add_argument_group("fixed")
    fixed.add_argument("--cycles", type=int, default=8)
    fixed.add_argument("--changes", type=int, default=60)
    fixed.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    return args, non_default_flags(args, parser)


if __name__ == "__main__":
    arguments, given = parse_args()
    asyncio.run(main(arguments, given))
