"""What the benches share: the simulator on loopback (recording every API request), a
webhook receiver (timestamping every notification, optionally misbehaving), and the real
relay as a subprocess (`python -m relay run`) whose JSON log events are kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web

from relay.http.runner import ServedApp, serve_app
from relay.sim import SimServer, SimWorkspace

API_KEY = "bench-key"
Key = tuple[str, str]  # (execution id, terminal status)
# How a receiver answers one notification: None for the usual 204.
Answer = Callable[[web.Request], Awaitable[web.StreamResponse | None]]


class SimHost(SimServer):
    """A workspace served on loopback; the arrival time and path of every API request
    (not the control API) are recorded."""

    def __init__(self, workspace: SimWorkspace) -> None:
        super().__init__(workspace, control=False, on_api_request=self._record)
        self.arrivals: list[float] = []
        self.reads: list[tuple[float, str]] = []

    def _record(self, request: web.Request, _status: int, arrived_s: float) -> None:
        self.arrivals.append(arrived_s)
        self.reads.append((arrived_s, _read_name(request)))

    def count_between(self, start_s: float, end_s: float) -> int:
        return sum(1 for t in self.arrivals if start_s <= t < end_s)


def _read_name(request: web.Request) -> str:
    if request.path == "/api/v1/executions":
        return f"list p{request.query.get('pageNumber', '1')}"
    return "nestings" if request.path.endswith("/nestings") else "get"


@dataclass(frozen=True, slots=True)
class Received:
    webhook_id: str
    key: Key
    at_s: float


class Receiver:
    """The webhook sink's other end: timestamps each notification on arrival."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.received: list[Received] = []
        self._answer = answer
        self._arrived = asyncio.Event()
        self._served: ServedApp | None = None

    @property
    def url(self) -> str:
        assert self._served is not None
        return f"http://127.0.0.1:{self._served.port}/hook"

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._served = await serve_app(app, host="127.0.0.1", port=0, shutdown_timeout_s=2.0)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._served is not None:
            await self._served.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at_s = time.monotonic()
        if self._answer is not None and (misbehaved := await self._answer(request)) is not None:
            return misbehaved  # not received: the relay must send it again
        body = await request.json()
        execution = body.get("execution") or {}
        key = (str(execution.get("id")), str(execution.get("status")))
        self.received.append(Received(request.headers.get("webhook-id", ""), key, at_s))
        self._arrived.set()
        return web.Response(status=204)

    async def wait_for(self, keys: Iterable[Key], *, timeout_s: float) -> None:
        """Until every key has been notified, or the timeout (then it simply returns)."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout_s
        while not wanted <= {r.key for r in self.received}:
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


class Relay:
    """`python -m relay run -c FILE` with JSON logs; its events are kept (and the raw
    lines written to `log`, with --keep-logs)."""

    def __init__(self, process: asyncio.subprocess.Process, log: TextIO | None) -> None:
        self._process = process
        self._log = log
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="relay-log-reader")

    @classmethod
    async def start(cls, config: Path, log: TextIO | None) -> Relay:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "relay", "run", "-c", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "BENCH_ZAIA_KEY": API_KEY},
        )  # fmt: skip
        return cls(process, log)

    @property
    def pid(self) -> int:
        return self._process.pid

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace")
            if self._log is not None:
                self._log.write(line)
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    self.events.append(event)
            self._changed.set()
        self._changed.set()

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.get("event") == name)

    async def wait_for(self, name: str, *, count: int = 1, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count(name) < count:
            if self._reader.done():
                raise RuntimeError(f"the relay exited before {name}: {self.events[-5:]}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"no {count} x {name} within {timeout_s:g}s: {self.events[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def cpu_s(self) -> float:
        """utime + stime of the relay process, in seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def kill(self) -> None:
        """SIGKILL: the crash a supervisor restarts from."""
        if self._process.returncode is None:
            self._process.kill()

    async def exited(self) -> int:
        """Wait for the process to end; its exit status (negative: the signal)."""
        status = await self._process.wait()
        await self._reader
        return status

    async def stop(self) -> None:
        if self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 30)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        await self._reader


def alert_endings_to(hook_url: str, statuses: Iterable[str], *, sink_options: str = "") -> str:
    """The configuration's `server`, `log`, `rules` and `sinks` the benches share: one rule
    per status, each notifying the webhook sink `hook` at once, one alert a request
    (`sink_options`: more of its lines, indented four spaces)."""
    rules = "".join(
        f"  - name: {status}\n    when: {{status: [{status}]}}\n"
        f"    severity: warning\n    sinks: [hook]\n"
        for status in statuses
    )
    return f"""server:
  listen: 127.0.0.1:0
log:
  format: json
rules:
{rules}sinks:
  hook:
    type: webhook
    url: {hook_url}
    group_wait: 0s
    max_alerts_per_request: 1
{sink_options}"""


def max_in_window(times: list[float], window_s: float) -> int:
    """The most events in any half-open window [t, t + window_s)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
