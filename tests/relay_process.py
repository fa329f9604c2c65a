"""Runs `zaia-relay` as a real subprocess and reads its JSON log lines, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class RelayProcess:
    """One `python -m relay ...` process; every JSON line it prints is kept in `events`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.events: list[Event] = []
        self.other_lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read(), name="relay-process-reader")

    @classmethod
    async def start(
        cls, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> RelayProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self._process.stdout is not None
        async for raw in self._process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            async with self._changed:
                if isinstance(event, dict):
                    self.events.append(event)
                else:
                    self.other_lines.append(line)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]

    async def wait_until(
        self, condition: Callable[[], bool], *, timeout_s: float = 20.0, what: str = ""
    ) -> None:
        """Wait for new output until `condition()` holds; fail with the log tail otherwise."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                while not condition():
                    if self._reader.done():
                        raise AssertionError(f"the relay exited before: {what}\n{self.tail()}")
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for: {what}\n{self.tail()}") from None

    async def wait_for_event(self, name: str, *, count: int = 1, timeout_s: float = 20.0) -> None:
        await self.wait_until(
            lambda: len(self.named(name)) >= count,
            timeout_s=timeout_s,
            what=f"{count} x {name}",
        )

    def tail(self, lines: int = 30) -> str:
        rendered = [json.dumps(e) for e in self.events[-lines:]] + self.other_lines[-lines:]
        return "\n".join(rendered)

    async def stop(self, *, timeout_s: float = 20.0) -> int:
        """SIGTERM, then wait for a clean exit."""
        self._process.send_signal(signal.SIGTERM)
        return await self.wait(timeout_s=timeout_s)

    async def kill(self) -> int:
        """`kill -9`: no chance to clean up."""
        self._process.kill()
        return await self.wait()

    def freeze(self) -> None:
        """SIGSTOP: the process stops, its connections stay open (no FIN is sent)."""
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._process.send_signal(signal.SIGCONT)

    def signal(self, signum: signal.Signals) -> None:
        """Any other signal (SIGHUP: reload the configuration)."""
        self._process.send_signal(signum)

    async def wait(self, *, timeout_s: float = 20.0) -> int:
        async with asyncio.timeout(timeout_s):
            code = await self._process.wait()
            await self._reader
        return code

    async def close(self) -> None:
        """Make sure nothing is left running (for `finally` blocks)."""
        if self._process.returncode is None:
            self._process.kill()
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            await self.wait(timeout_s=10)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def alert_failures_to(hook_url: str, **sink_options: str) -> str:
    """Configuration (YAML, at the top level) of one rule sending every failed execution
    to a webhook sink named `hook` at `hook_url`, with more of its settings
    (`secret="..."`, `timeout="2s"`)."""
    options = "".join(f"    {key}: {value}\n" for key, value in sink_options.items())
    return f"""rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [hook]
sinks:
  hook:
    type: webhook
    url: {hook_url}
{options}"""
