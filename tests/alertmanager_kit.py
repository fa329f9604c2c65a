"""Real Alertmanagers on loopback (Debian package prometheus-alertmanager) for the tests:
started on a port chosen in advance, so a test can keep one down for a while (not
started yet, or stopped) and bring it back on the same port, as an HA instance would."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from tests.tools import require_tool

_READY_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Alertmanager:
    """One Alertmanager, clustering off, routing every alert to a receiver that sends
    nothing. Use as a context manager: whatever runs is stopped on exit."""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        self._binary = require_tool("prometheus-alertmanager")
        self.port = port or free_port()
        self._dir = workdir / f"alertmanager-{self.port}"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._config = self._dir / "alertmanager.yml"
        self._config.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start it and wait until it answers `/-/ready`."""
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [
                self._binary,
                f"--config.file={self._config}",
                f"--storage.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"alertmanager on port {self.port} exited at start")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling a starting process: not a race being papered over
        self.stop()
        raise RuntimeError(f"alertmanager on port {self.port} not ready in {_READY_TIMEOUT_S}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._process = None

    def alerts(self, **query: str) -> list[dict[str, Any]]:
        """What it shows at `/api/v2/alerts` (e.g. `active="true"`)."""
        response = httpx.get(f"{self.url}/api/v2/alerts", params=query, timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def alert_ids(self, **query: str) -> set[str]:
        return {alert["labels"]["alert_id"] for alert in self.alerts(**query)}

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
