"""Adaptive versus fixed polling: the real relay, as a subprocess, against the simulator.

    .venv/bin/python bench/cadence.py [--quick] [--only small,deep,idle] [--keep-logs DIR]

For each workload, two relays run side by side (same noise for both), each against its
own simulated workspace served from this process, with the same seeded scenario: one
`polling: adaptive` (poll_interval 30s: the worst-case bound), one `polling: fixed`
(poll_interval 1s, so that cycles run back to back and the budget sets the pace). Both
have `request_budget: 60/m`, page_size 100, discovery_pages 20, 100,000 ended
executions of history below whatever runs, a SQLite store in a temporary directory,
and three rules (failed, cancelled, completed) that each POST one notification per
alert to a webhook receiver in this process (`group_wait: 0s`, one alert a request).

Workloads (the measurement starts once the first start is done: `poll.sweep_done` when
adaptive, three committed cycles when fixed):
- small: 20 running executions; one of them fails at random moments (about one a
  second), and a new one starts in its place. Detection = the status change in the
  simulator -> the notification's arrival at the receiver.
- deep: 500 running executions spread over 13 pages (interleaved with ended ones),
  of ages and remaining durations drawn from the stationary state of a lognormal
  lifetime law (median 55 s, sigma 1.6: most short, a few of hours); churn of about
  5 changes a second (arrivals at the rate that keeps 500 running, and as many
  endings: 60% completed, 30% failed, 10% cancelled). Every ending must be notified
  exactly once (distinct webhook-ids per ending).
- idle: nothing runs for 2 minutes (requests counted at the simulator), then
  executions that fail within a second of being created, every few seconds.

Printed for each workload and mode, next to its target (targets judge the adaptive
relay unless the target says both): detection latencies, misses and duplicates, the
measured request rate, the most requests in any 60 s window at the simulator (every
request's arrival time is recorded), the relay's CPU time per API request in steady
state (utime+stime from /proc/<pid>/stat over the measured period, divided by the
requests in it) and its peak RSS (VmHWM). A missed target prints FAIL and the exit code
is 1. The default run takes about 11 minutes; --quick shortens every phase.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import math
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from flags import non_default_flags  # bench/, run as a script
from rig import API_KEY, Key, Receiver, Relay, SimHost, alert_endings_to, max_in_window

from relay.sim import SimWorkspace, utcnow

BUDGET_PER_MINUTE = 60
PAGE_SIZE = 100
HISTORY = 100_000
DISCOVERY_PAGES = 20
MODES = ("adaptive", "fixed")
POLL_INTERVAL = {"adaptive": "30s", "fixed": "1s"}
TERMINAL_RULES = ("failed", "cancelled", "completed")
# The deep workload's lifetime law (lognormal) and size.
DEEP_RUNNING = 500
DEEP_MEDIAN_S = 55.0
DEEP_SIGMA = 1.6
DEEP_ENDINGS = (("completed", 0.6), ("failed", 0.3), ("cancelled", 0.1))


def write_config(folder: Path, *, mode: str, sim_url: str, hook_url: str) -> Path:
    path = folder / "relay.yaml"
    path.write_text(
        f"""sources:
  - name: bench
    base_url: {sim_url}
    api_key: ${{BENCH_ZAIA_KEY}}
    polling: {mode}
    request_budget: {BUDGET_PER_MINUTE}/m
    poll_interval: {POLL_INTERVAL[mode]}
    page_size: {PAGE_SIZE}
    discovery_pages: {DISCOVERY_PAGES}
store:
  url: sqlite:///{folder}/state.db
{alert_endings_to(hook_url, TERMINAL_RULES)}"""
    )
    return path


# --- one relay in one mode, and what it measured ---------------------------------------


@dataclass
class Harness:
    """One mode of one workload: its simulator, receiver and relay, and the steady-state
    period the CPU and request rate are measured over."""

    mode: str
    sim: SimHost
    hook: Receiver
    relay: Relay
    began_s: float = 0.0
    began_cpu_s: float = 0.0
    figures: dict[str, float | None] = field(default_factory=dict)

    @property
    def workspace(self) -> SimWorkspace:
        return self.sim.workspace

    async def warm_up(self) -> None:
        """Until the first start is over: the adaptive sweep is done, or three fixed
        cycles have committed."""
        if self.mode == "adaptive":
            await self.relay.wait_for("poll.sweep_done", timeout_s=300)
        else:
            await self.relay.wait_for("poll.done", count=3, timeout_s=300)
        self.began_s = time.monotonic()
        self.began_cpu_s = self.relay.cpu_s()

    def end_steady(self) -> None:
        ended_s = time.monotonic()
        requests = self.sim.count_between(self.began_s, ended_s)
        cpu_ms = (self.relay.cpu_s() - self.began_cpu_s) * 1000
        self.figures["rate"] = requests / (ended_s - self.began_s) * 60
        self.figures["cpu_per_request"] = cpu_ms / requests if requests else None
        self.figures["rss"] = self.relay.peak_rss_mb()
        self.figures["window"] = max_in_window(self.sim.arrivals, 60.0)

    def detection(self, changes: dict[Key, float]) -> list[float]:
        """Seconds from each change to its first notification (inf when never)."""
        first: dict[Key, float] = {}
        for r in self.hook.received:
            first.setdefault(r.key, r.at_s)
        return [first.get(key, math.inf) - at_s for key, at_s in changes.items()]

    def record_latency(self, changes: dict[Key, float], *, p99: bool = True) -> None:
        latencies = self.detection(changes)
        self.figures["median"] = percentile(latencies, 0.5)
        if p99:
            self.figures["p99"] = percentile(latencies, 0.99)
        self.figures["detected"] = sum(1 for x in latencies if math.isfinite(x))
        self.figures["changes"] = len(changes)

    def reads_summary(self) -> str:
        """What the relay read in steady state, by request kind (most frequent first)."""
        counts = Counter(name for t, name in self.sim.reads if t >= self.began_s)
        return ", ".join(f"{name} x{n}" for name, n in counts.most_common(12))


@contextlib.asynccontextmanager
async def harness(
    mode: str, workspace: SimWorkspace, *, log_path: Path | None
) -> AsyncIterator[Harness]:
    with contextlib.ExitStack() as files, tempfile.TemporaryDirectory() as folder:
        log = files.enter_context(log_path.open("w")) if log_path is not None else None
        async with SimHost(workspace) as sim, Receiver() as hook:
            config = write_config(Path(folder), mode=mode, sim_url=sim.url, hook_url=hook.url)
            relay = await Relay.start(config, log)
            try:
                yield Harness(mode, sim, hook, relay)
            finally:
                await relay.stop()
                if log_path is not None:
                    save_reads(log_path.with_suffix(".requests"), sim.reads)


def save_reads(path: Path, reads: list[tuple[float, str]]) -> None:
    start = reads[0][0] if reads else 0.0
    path.write_text("".join(f"{t - start:9.3f} {name}\n" for t, name in reads))


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- workspaces --------------------------------------------------------------------------


def seed_history(workspace: SimWorkspace, *, before: datetime) -> None:
    """100,000 ended executions (children included), all created before `before`."""
    workspace.now = lambda: before
    workspace.seed_history(HISTORY, failed_ratio=0.06, cancelled_ratio=0.03)
    workspace.now = utcnow


def small_workspace(seed: int) -> tuple[SimWorkspace, list[str]]:
    workspace = SimWorkspace(api_key=API_KEY, seed=seed)
    now = utcnow()
    seed_history(workspace, before=now - timedelta(minutes=15))
    running = [
        workspace.create_execution(created_at=now - timedelta(seconds=600 - 25 * i))
        for i in range(20)
    ]
    return workspace, running


def idle_workspace(seed: int) -> SimWorkspace:
    workspace = SimWorkspace(api_key=API_KEY, seed=seed)
    seed_history(workspace, before=utcnow() - timedelta(minutes=5))
    return workspace


def lifetime_s(rng: random.Random) -> float:
    return DEEP_MEDIAN_S * math.exp(DEEP_SIGMA * rng.gauss(0.0, 1.0))


def deep_arrival_rate_per_s() -> float:
    """The arrival rate that keeps DEEP_RUNNING running (Little's law)."""
    return DEEP_RUNNING / (DEEP_MEDIAN_S * math.exp(DEEP_SIGMA**2 / 2))


@dataclass(frozen=True)
class DeepStart:
    workspace: SimWorkspace
    remaining_s: dict[str, float]  # running id -> seconds until it ends
    pages: int  # the page of the deepest running execution


def deep_workspace(seed: int) -> DeepStart:
    """500 running executions in the stationary state of the lifetime law: a running
    execution's whole lifetime is length-biased (lognormal with mu + sigma^2), its age
    a uniform share of it. Listed newest first, with 0-3 ended executions between
    running ones, so that they span 13 pages."""
    rng = random.Random(seed)
    biased_median_s = DEEP_MEDIAN_S * math.exp(DEEP_SIGMA**2)
    population = []
    for _ in range(DEEP_RUNNING):
        whole_s = biased_median_s * math.exp(DEEP_SIGMA * rng.gauss(0.0, 1.0))
        share = rng.random()
        population.append((share * whole_s, (1 - share) * whole_s))
    population.sort()
    # (age, status, duration or remaining), youngest first
    items: list[tuple[float, str, float]] = []
    previous_age_s = 0.0
    for age_s, remaining_s in population:
        between = sorted(rng.uniform(previous_age_s, age_s) for _ in range(rng.randint(0, 3)))
        for ended_age_s in between:
            status = rng.choices(["completed", "failed", "cancelled"], [0.91, 0.06, 0.03])[0]
            items.append((ended_age_s, status, min(lifetime_s(rng), 0.9 * ended_age_s)))
        items.append((age_s, "running", remaining_s))
        previous_age_s = age_s
    deepest = max(i for i, item in enumerate(items) if item[1] == "running")
    now = utcnow()
    workspace = SimWorkspace(api_key=API_KEY, seed=seed)
    seed_history(workspace, before=now - timedelta(seconds=population[-1][0] + 60))
    remaining: dict[str, float] = {}
    for age_s, status, seconds in reversed(items):  # oldest first: the index appends
        created_at = now - timedelta(seconds=age_s)
        if status == "running":
            remaining[workspace.create_execution(created_at=created_at)] = seconds
        else:
            ended_at = created_at + timedelta(seconds=seconds)
            workspace.create_execution(status=status, created_at=created_at, ended_at=ended_at)
    return DeepStart(workspace, remaining, pages=deepest // PAGE_SIZE + 1)


# --- workloads ---------------------------------------------------------------------------


def end(workspace: SimWorkspace, execution_id: str, status: str, changes: dict[Key, float]) -> None:
    error = "bench: a step failed" if status == "failed" else None
    workspace.set_status(execution_id, status, error=error)
    changes[(execution_id, status)] = time.monotonic()


async def small(h: Harness, *, running: list[str], args: argparse.Namespace) -> None:
    rng = random.Random(11)
    await h.warm_up()
    changes: dict[Key, float] = {}
    for _ in range(args.small_samples):
        await asyncio.sleep(rng.expovariate(1.0))  # a random moment, about one a second
        victim = rng.choice(running)
        end(h.workspace, victim, "failed", changes)
        running.remove(victim)
        running.append(h.workspace.create_execution())
    await h.hook.wait_for(changes, timeout_s=30)
    h.end_steady()
    h.record_latency(changes)


async def deep(h: Harness, *, start: DeepStart, args: argparse.Namespace) -> None:
    rng = random.Random(12)
    await h.warm_up()
    changes: dict[Key, float] = {}
    t0 = time.monotonic()
    stop_s = t0 + args.deep_seconds
    events: list[tuple[float, int, str | None]] = [
        (t0 + remaining_s, n, execution_id)
        for n, (execution_id, remaining_s) in enumerate(start.remaining_s.items())
        if t0 + remaining_s < stop_s
    ]
    at_s = t0
    while (at_s := at_s + rng.expovariate(deep_arrival_rate_per_s())) < stop_s:
        events.append((at_s, len(events) + DEEP_RUNNING, None))  # None: an arrival
    heapq.heapify(events)
    arrivals = 0
    statuses, weights = zip(*DEEP_ENDINGS, strict=True)
    while events:
        at_s, n, execution_id = heapq.heappop(events)
        await asyncio.sleep(max(0.0, at_s - time.monotonic()))
        if execution_id is None:
            arrivals += 1
            new_id = h.workspace.create_execution()
            if (ends_at_s := at_s + lifetime_s(rng)) < stop_s:
                heapq.heappush(events, (ends_at_s, n, new_id))
        else:
            end(h.workspace, execution_id, rng.choices(statuses, weights)[0], changes)
    h.figures["churn"] = (arrivals + len(changes)) / args.deep_seconds
    await h.hook.wait_for(changes, timeout_s=args.drain_seconds)
    h.end_steady()
    h.record_latency(changes)
    by_key: dict[Key, set[str]] = {}
    for r in h.hook.received:
        by_key.setdefault(r.key, set()).add(r.webhook_id)
    h.figures["missed"] = sum(1 for key in changes if key not in by_key)
    h.figures["duplicates"] = sum(len(ids) - 1 for key, ids in by_key.items() if key in changes)
    h.figures["unexpected"] = sum(len(ids) for key, ids in by_key.items() if key not in changes)


async def idle(h: Harness, *, args: argparse.Namespace) -> None:
    rng = random.Random(13)
    await h.warm_up()
    await asyncio.sleep(args.idle_seconds)  # the workload: nothing happens
    idle_requests = h.sim.count_between(h.began_s, h.began_s + args.idle_seconds)
    h.figures["idle_rate"] = idle_requests / args.idle_seconds * 60
    changes: dict[Key, float] = {}
    for _ in range(args.idle_samples):
        await asyncio.sleep(rng.uniform(3.0, 7.0))
        execution_id = h.workspace.create_execution()
        await asyncio.sleep(rng.uniform(0.1, 1.0))  # it fails within a second
        end(h.workspace, execution_id, "failed", changes)
    await h.hook.wait_for(changes, timeout_s=45)
    h.end_steady()
    h.record_latency(changes, p99=False)


# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    key: str
    limit: float | None = None  # the target: value <= limit
    judged: tuple[str, ...] = ("adaptive",)
    digits: int = 2
    note: str = ""

    def target(self) -> str:
        if self.limit is None:
            return self.note
        who = "both" if len(self.judged) == 2 else self.judged[0]
        return f"<= {self.limit:g} ({who}){' ' + self.note if self.note else ''}"


COMMON_ROWS = (
    Row("requests a minute (measured)", "rate", digits=1),
    Row("most requests in a 60 s window", "window", BUDGET_PER_MINUTE, MODES, 0),
    Row("relay CPU per request (ms)", "cpu_per_request", 1.5, MODES),
    Row("relay peak RSS (MB)", "rss", 150, MODES, 0),
)
ROWS = {
    "small": (
        Row("detected / changes", "detected", digits=0, note="(all)"),
        Row("median detection (s)", "median", 1.0),
        Row("p99 detection (s)", "p99", 2.5),
    ),
    "deep": (
        Row("changes a second (driven)", "churn", digits=1, note="~5"),
        Row("endings made", "changes", digits=0),
        Row("missed endings", "missed", 0, MODES, 0),
        Row("duplicate notifications", "duplicates", 0, MODES, 0),
        Row("notifications for no ending", "unexpected", 0, MODES, 0),
        Row("median detection (s)", "median", 3.0),
        Row("p99 detection (s)", "p99"),
        Row("median adaptive / fixed", "ratio", 0.5),
    ),
    "idle": (
        Row("requests a minute while idle", "idle_rate", 12, digits=1),
        Row("detected / changes", "detected", digits=0, note="(all)"),
        Row("median detection (s)", "median", 5.0),
    ),
}


def cell(row: Row, mode: str, value: float | None) -> tuple[str, bool]:
    """The printed value and whether it misses its target."""
    judged = row.limit is not None and mode in row.judged
    if value is None:
        return ("n/a FAIL" if judged else "-"), judged
    text = "never" if math.isinf(value) else f"{value:.{row.digits}f}"
    if not judged:
        return text, False
    assert row.limit is not None
    failed = not value <= row.limit
    return f"{text} {'FAIL' if failed else 'ok'}", failed


def print_table(workload: str, figures: dict[str, dict[str, float | None]]) -> bool:
    failed = False
    for row in (*ROWS[workload], *COMMON_ROWS):
        cells = []
        for mode in MODES:
            text, missed = cell(row, mode, figures[mode].get(row.key))
            cells.append(text)
            failed |= missed
        print(f"{workload:8} {row.figure:32} {cells[0]:>12} {cells[1]:>12}   {row.target()}")
    return failed


# --- main --------------------------------------------------------------------------------


Drive = Callable[[Harness], Awaitable[None]]


def prepare(name: str, args: argparse.Namespace) -> dict[str, tuple[SimWorkspace, Drive]]:
    """Per mode, the same seeded workspace and the workload that drives it."""
    prepared: dict[str, tuple[SimWorkspace, Drive]] = {}
    for mode in MODES:
        if name == "small":
            workspace, running = small_workspace(seed=1)
            prepared[mode] = (workspace, partial(small, running=running, args=args))
        elif name == "deep":
            start = deep_workspace(seed=2)
            prepared[mode] = (start.workspace, partial(deep, start=start, args=args))
        else:
            prepared[mode] = (idle_workspace(seed=3), partial(idle, args=args))
    if name == "deep":
        print(
            f"{DEEP_RUNNING} running over {start.pages} pages, "
            f"arrivals {deep_arrival_rate_per_s():.2f}/s",
            flush=True,
        )
    return prepared


async def run_workload(name: str, args: argparse.Namespace) -> dict[str, dict[str, float | None]]:
    """Both modes side by side; the figures of each."""
    print(f"\n== {name} ==", flush=True)
    prepared = prepare(name, args)

    async def one(mode: str) -> Harness:
        workspace, drive = prepared[mode]
        log_path = args.keep_logs / f"{name}-{mode}.log" if args.keep_logs else None
        async with harness(mode, workspace, log_path=log_path) as h:
            await drive(h)
            return h

    harnesses = await asyncio.gather(*(one(mode) for mode in MODES))
    for h in harnesses:
        print(f"{h.mode} reads in steady state: {h.reads_summary()}")
    figures = {h.mode: h.figures for h in harnesses}
    if name == "deep":
        adaptive, fixed = figures["adaptive"].get("median"), figures["fixed"].get("median")
        figures["adaptive"]["ratio"] = adaptive / fixed if adaptive is not None and fixed else None
    return figures


async def main(args: argparse.Namespace, flags: list[str]) -> int:
    began = time.monotonic()
    print(f"flags: {' '.join(flags) if flags else 'none (the default run)'}")
    print(
        f"budget {BUDGET_PER_MINUTE}/m, page_size {PAGE_SIZE}, history {HISTORY:,}, "
        f"poll_interval adaptive {POLL_INTERVAL['adaptive']} / fixed {POLL_INTERVAL['fixed']}, "
        f"discovery_pages {DISCOVERY_PAGES}"
    )
    if args.keep_logs:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    results = {name: await run_workload(name, args) for name in args.only}
    print(f"\n{'workload':8} {'figure':32} {'adaptive':>12} {'fixed':>12}   target")
    failed = False
    for name, figures in results.items():
        failed |= print_table(name, figures)
    print(
        f"\nwall time {time.monotonic() - began:.0f} s; {'FAIL' if failed else 'all targets met'}"
    )
    return 1 if failed else 0


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    parser.add_argument("--only", default="small,deep,idle", help="workloads, comma-separated")
    parser.add_argument("--keep-logs", type=Path, default=None, help="save relay logs here")
    parser.add_argument("--small-samples", type=int, default=80)
    parser.add_argument("--deep-seconds", type=float, default=150.0)
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    parser.add_argument("--idle-samples", type=int, default=10)
    args = parser.parse_args()
    flags = non_default_flags(args, parser)
    if args.quick:
        args.small_samples, args.deep_seconds, args.drain_seconds = 25, 45.0, 40.0
        args.idle_seconds, args.idle_samples = 40.0, 4
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(ROWS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args, flags


if __name__ == "__main__":
    arguments, changed = parse_args()
    sys.exit(asyncio.run(main(arguments, changed)))
