"""Soak: the real relay under random faults, then a count of what was lost.

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 1] [--keep-logs DIR]

Runs `python -m relay run` (a subprocess, SQLite store in a temporary directory,
`polling: adaptive`, request_budget 120/m, poll_interval 5s) against the simulator and
a webhook receiver served from this process, for `--minutes`. Meanwhile:
- about twice a second a running execution ends (60% completed, 30% failed, 10%
  cancelled; a rule alerts each) and a new one starts, so about 30 run at any time;
- every few seconds one fault, drawn at random:
  - the API: a 5xx, a 429 with a `Retry-After` that is short, huge (999999999999),
    400 digits long, negative or an HTTP date in the year 9999, an HTML page served
    with 200 or 502, or an answer that hangs past the relay's request timeout;
  - the receiver, for 5-20 s: 500s, 429s with the same kinds of `Retry-After`, answers
    that hang past the sink's timeout, or slow answers within it;
  - `kill -9` of the relay, restarted after 0-3 s with the same store.
Then the faults stop, and the relay has `--drain-seconds` (120) to deliver the rest.

Printed: transitions made upstream (endings), alerted (endings whose notification the
receiver accepted), lost (target 0), duplicates (endings notified under more than one
webhook-id, target 0), notifications for no ending (target 0), redeliveries of one
webhook-id (at-least-once: a receiver dedupes these; no target), the faults injected,
the `kill -9`s, and exits of the relay this script did not cause (target 0; each is
restarted and its last log lines printed). A missed target prints FAIL and the exit
code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from aiohttp import web
from flags import non_default_flags  # bench/, run as a script
from rig import API_KEY, Key, Receiver, Relay, SimHost, alert_endings_to

from relay.sim import SimWorkspace
from relay.sim.faults import Fault

RUNNING = 30
ENDINGS = (("completed", 0.6), ("failed", 0.3), ("cancelled", 0.1))
SINK_TIMEOUT_S = 3.0
API_TIMEOUT_S = 3.0
# Retry-After values a misbehaving server sends: a sane one, and every kind the relay
# must cap (issue 13): huge, absurdly long, negative, a date far in the future.
ENDING_STATUSES = tuple(status for status, _ in ENDINGS)
SINK_OPTIONS = f"    timeout: {SINK_TIMEOUT_S:g}s\n    max_retry_after: 5s\n"
RETRY_AFTERS = ("2", "999999999999", "9" * 400, "-5", "Fri, 31 Dec 9999 23:59:59 GMT")


def write_config(folder: Path, *, sim_url: str, hook_url: str) -> Path:
    path = folder / "relay.yaml"
    path.write_text(
        f"""sources:
  - name: soak
    base_url: {sim_url}
    api_key: ${{BENCH_ZAIA_KEY}}
    polling: adaptive
    request_budget: 120/m
    poll_interval: 5s
    page_size: 50
    discovery_pages: 5
    request_timeout: {API_TIMEOUT_S:g}s
    max_retry_after: 5s
store:
  url: sqlite:///{folder}/state.db
{alert_endings_to(hook_url, ENDING_STATUSES, sink_options=SINK_OPTIONS)}"""
    )
    return path


class ReceiverFaults:
    """How the receiver misbehaves now: one mode for a while, or not at all."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.mode: str | None = None

    async def answer(self, _request: web.Request) -> web.StreamResponse | None:
        mode = self.mode
        if mode == "500":
            return web.Response(status=500, text="internal error")
        if mode == "429":
            retry_after = self._rng.choice(RETRY_AFTERS)
            return web.Response(status=429, headers={"Retry-After": retry_after})
        if mode == "hang":
            await asyncio.sleep(SINK_TIMEOUT_S + 5)
            return web.Response(status=503)  # the relay gave up long ago
        if mode == "slow":
            await asyncio.sleep(self._rng.uniform(0.5, SINK_TIMEOUT_S / 2))
        return None


class Soak:
    def __init__(self, args: argparse.Namespace, folder: Path, log: TextIO | None) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workspace = SimWorkspace(api_key=API_KEY, seed=args.seed)
        self.workspace.seed_history(2_000)
        self.running = [self.workspace.create_execution() for _ in range(RUNNING)]
        self.made: dict[Key, float] = {}
        self.faults: Counter[str] = Counter()
        self.receiver_faults = ReceiverFaults(self.rng)
        self.folder = folder
        self.log = log
        self.kills = 0
        self.unexpected: list[str] = []
        self.relay: Relay | None = None
        self._killing = False

    async def keep_relay_running(self, config: Path, stop: asyncio.Event) -> None:
        """Start the relay, and again whenever it ends; an end this script did not
        cause is counted with the relay's last words."""
        while not stop.is_set():
            self.relay = await Relay.start(config, self.log)
            status = await self.relay.exited()
            if self._killing:
                self._killing = False
                await asyncio.sleep(self.rng.uniform(0, 3))
            elif not stop.is_set():
                last = [e.get("event") for e in self.relay.events[-5:]]
                self.unexpected.append(f"exit status {status}, last events {last}")

    async def churn(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.rng.expovariate(2.0))
            index = self.rng.randrange(len(self.running))
            execution_id = self.running[index]
            status = self.rng.choices([s for s, _ in ENDINGS], [w for _, w in ENDINGS])[0]
            self.workspace.set_status(execution_id, status)
            self.made[(execution_id, status)] = time.monotonic()
            self.running[index] = self.workspace.create_execution()

    async def inject(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.rng.uniform(2, 8))
            kind = self.rng.choice(("api", "api", "receiver", "receiver", "kill"))
            if kind == "api":
                self.faults[self._api_fault()] += 1
            elif kind == "receiver":
                mode = self.rng.choice(("500", "429", "hang", "slow"))
                self.faults[f"receiver {mode}"] += 1
                self.receiver_faults.mode = mode
                await asyncio.sleep(self.rng.uniform(5, 20))
                self.receiver_faults.mode = None
            elif self.relay is not None and not self._killing:
                self._killing = True
                self.kills += 1
                self.relay.kill()

    def _api_fault(self) -> str:
        choice = self.rng.choice(("5xx", "429", "html", "hang"))
        times = self.rng.randint(1, 3)
        if choice == "5xx":
            fault = Fault("status", status=self.rng.choice((500, 502, 503)), times=times)
        elif choice == "429":
            fault = Fault("retry_after", retry_after=self.rng.choice(RETRY_AFTERS), times=times)
        elif choice == "html":
            fault = Fault("non_json", status=self.rng.choice((200, 502)), times=times)
        else:
            fault = Fault("delay", delay_s=API_TIMEOUT_S + 2, times=1)
        self.workspace.inject_fault(fault)
        return f"api {choice}"


async def main(args: argparse.Namespace, flags: list[str]) -> int:
    print(f"flags: {' '.join(flags) if flags else 'none (the default run)'}")
    with contextlib.ExitStack() as files, tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        log = None
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            log = files.enter_context((args.keep_logs / "soak-relay.log").open("w"))
        soak = Soak(args, folder, log)
        async with (
            Receiver(soak.receiver_faults.answer) as receiver,
            SimHost(soak.workspace) as sim,
        ):
            config = write_config(folder, sim_url=sim.url, hook_url=receiver.url)
            stop_relay, stop_faults = asyncio.Event(), asyncio.Event()
            supervisor = asyncio.create_task(soak.keep_relay_running(config, stop_relay))
            began = time.monotonic()
            await asyncio.sleep(15)  # the first start: baseline, before anything ends
            tasks = [
                asyncio.create_task(soak.churn(stop_faults)),
                asyncio.create_task(soak.inject(stop_faults)),
            ]
            await asyncio.sleep(args.minutes * 60)
            stop_faults.set()
            await asyncio.gather(*tasks)
            soak.workspace.clear_faults()
            soak.receiver_faults.mode = None
            print(f"faults stopped after {time.monotonic() - began:.0f} s; draining")
            await receiver.wait_for(soak.made, timeout_s=args.drain_seconds)
            stop_relay.set()
            if soak.relay is not None:
                await soak.relay.stop()
            await supervisor
    return report(soak, receiver)


def report(soak: Soak, receiver: Receiver) -> int:
    made = set(soak.made)
    ids_by_key: dict[Key, set[str]] = {}
    for r in receiver.received:
        ids_by_key.setdefault(r.key, set()).add(r.webhook_id)
    alerted = made & ids_by_key.keys()
    deliveries = Counter(r.webhook_id for r in receiver.received)
    rows = [
        ("transitions made upstream (endings)", len(made), None),
        ("alerted", len(alerted), None),
        ("lost", len(made - alerted), 0),
        (
            "duplicates (one ending, several webhook-ids)",
            sum(len(v) > 1 for v in ids_by_key.values()),
            0,
        ),
        ("notifications for no ending", len(ids_by_key.keys() - made), 0),
        ("redeliveries of one webhook-id", sum(n - 1 for n in deliveries.values()), None),
        ("kill -9 of the relay", soak.kills, None),
        ("exits the soak did not cause", len(soak.unexpected), 0),
    ]
    failed = False
    for label, value, target in rows:
        verdict = ""
        if target is not None:
            ok = value <= target
            failed |= not ok
            verdict = f"{'ok' if ok else 'FAIL'} (target <= {target})"
        print(f"{label:<48} {value:>6}  {verdict}")
    print("faults injected: " + ", ".join(f"{k} x{n}" for k, n in sorted(soak.faults.items())))
    for line in soak.unexpected:
        print(f"unexpected exit: {line}")
    print("FAIL" if failed else "all targets met")
    return 1 if failed else 0


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="of faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--keep-logs", type=Path, default=None, help="save the relay's log here")
    args = parser.parse_args()
    return args, non_default_flags(args, parser)


if __name__ == "__main__":
    arguments, changed = parse_args()
    sys.exit(asyncio.run(main(arguments, changed)))
