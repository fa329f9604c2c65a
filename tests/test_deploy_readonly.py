"""The relay runs with a read-only root filesystem, as the image and the chart run it.

The relay runs in a private mount namespace (`unshare --mount`) where `/` is remounted
read-only, `/tmp` is a fresh tmpfs and only the state directory is writable, like the
container's volume. It must poll the simulator, store its state in that directory,
alert, serve HTTP (the image's HEALTHCHECK passes) and stop cleanly: any other write
fails with "Read-only file system".
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from relay.sim import SimServer, SimWorkspace
from tests.deploy_support import healthcheck_command, require_tool
from tests.tools import unavailable

# The script exits with this code when the namespace cannot be set up (no privileges):
# the test is then skipped, since it says nothing about the relay.
NO_NAMESPACE = 97
STATE = "/mnt"  # an existing mount point; the container's /var/lib/zaia-relay
API_KEY = "read-only-key"

# A clone (and its .venv) may itself live under /tmp, as CI's may: the old /tmp stays
# reachable at /srv, and the top folders listed in $KEEP_UNDER_TMP are bound back into
# the fresh tmpfs, read-only like the rest of the root.
SCRIPT = f"""
set -e
mount --bind "$STATE_DIR" {STATE} || exit {NO_NAMESPACE}
mount -o remount,bind,ro / || exit {NO_NAMESPACE}
mount --rbind /tmp /srv || exit {NO_NAMESPACE}
mount -t tmpfs -o size=16m tmpfs /tmp || exit {NO_NAMESPACE}
for keep in $KEEP_UNDER_TMP; do
  mkdir -p "/tmp/$keep"
  mount --bind "/srv/$keep" "/tmp/$keep" || exit {NO_NAMESPACE}
  mount -o remount,bind,ro "/tmp/$keep" || exit {NO_NAMESPACE}
done
if touch /read-only-probe 2>/dev/null; then exit {NO_NAMESPACE}; fi
cd {STATE}
exec "$@"
"""


def _kept_under_tmp() -> str:
    """Top folders under /tmp the relay's code lives in (the repo, the venv)."""
    here = Path(__file__).resolve().parents[1]
    kept = set()
    for path in (here, Path(sys.prefix).resolve(), Path(sys.executable).resolve()):
        if path.parts[:2] == ("/", "tmp") and len(path.parts) > 2:
            kept.add(path.parts[2])
    return " ".join(sorted(kept))


def write_config(state_dir: Path, *, sim_url: str, port: int) -> None:
    (state_dir / "relay.yaml").write_text(
        f"""
sources:
  - name: prod
    base_url: {sim_url}
    api_key: ${{ZAIA_API_KEY}}
    poll_interval: 300ms
    request_budget: 600/m
store:
  url: sqlite://{STATE}/state.db
server:
  listen: 127.0.0.1:{port}
log:
  format: json
rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [console]
sinks:
  console:
    type: console
    color: never
"""
    )


@asynccontextmanager
async def read_only_relay(
    state_dir: Path, args: Sequence[str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m relay ARGS` with a read-only root; skips when no namespace can be made."""
    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        _unavailable("needs root to make a mount namespace with a read-only root")
    process = await asyncio.create_subprocess_exec(
        *(unshare, "--mount", "--propagation", "private", "sh", "-c", SCRIPT, "sh"),
        *(sys.executable, "-m", "relay", *args, "-c", f"{STATE}/relay.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "STATE_DIR": str(state_dir),
            "KEEP_UNDER_TMP": _kept_under_tmp(),
            "ZAIA_API_KEY": API_KEY,
            "TMPDIR": "/tmp",
            "HOME": STATE,
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _unavailable(reason: str) -> None:
    """CI runs as root on a machine that allows mount namespaces: there, not being able
    to make one is a failure, not a reason to pass."""
    unavailable(reason)


def _skip_without_namespace(process: asyncio.subprocess.Process, output: str) -> None:
    if process.returncode == NO_NAMESPACE:
        _unavailable(f"cannot make a mount namespace with a read-only root here: {output}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _workspace() -> SimWorkspace:
    workspace = SimWorkspace(api_key=API_KEY, seed=3)
    for status in ("running", "completed", "failed"):
        workspace.create_execution(status=status)
    return workspace


@pytest.mark.slow
async def test_a_poll_cycle_needs_only_the_state_volume_and_tmp(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    async with SimServer(_workspace()) as sim:
        write_config(state_dir, sim_url=sim.url, port=_free_port())
        async with read_only_relay(state_dir, ["once"]) as process, asyncio.timeout(60):
            stdout, _ = await process.communicate()
    output = stdout.decode()
    _skip_without_namespace(process, output)
    assert process.returncode == 0, output
    assert "Read-only file system" not in output
    assert "3 execution(s) observed" in output
    assert (state_dir / "state.db").is_file()


async def _get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, object]:
    async with session.get(url) as response:
        return response.status, await response.json()


@pytest.mark.slow
async def test_the_daemon_alerts_serves_and_stops_on_a_read_only_root(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    workspace = _workspace()
    async with SimServer(workspace) as sim:
        write_config(state_dir, sim_url=sim.url, port=port)
        async with read_only_relay(state_dir, ["run"]) as process:
            # Read the output all along, so a chatty relay never blocks on a full pipe.
            assert process.stdout is not None
            reader = asyncio.create_task(process.stdout.read(), name="read-only-relay-output")
            failed = ""
            async with aiohttp.ClientSession() as session, asyncio.timeout(30):
                # Ready once the store answers and the source was polled.
                while True:
                    if process.returncode is not None:
                        break
                    try:
                        status, _ = await _get_json(session, f"{base}/readyz")
                    except aiohttp.ClientConnectionError:
                        status = 0
                    if status == 200:
                        break
                    await asyncio.sleep(0.1)  # bounded by the timeout above
                if process.returncode is None:
                    # The image's HEALTHCHECK (python + urllib) passes against /healthz.
                    check = await asyncio.create_subprocess_exec(
                        sys.executable,
                        *healthcheck_command()[1:],
                        env={**os.environ, "ZAIA_RELAY_HEALTHCHECK_URL": f"{base}/healthz"},
                    )
                    assert await check.wait() == 0
                    failed = workspace.create_execution(status="running")
                    workspace.set_status(failed, "failed", error="step failed")
                    while True:
                        status, body = await _get_json(session, f"{base}/api/v1/alerts")
                        assert status == 200, body
                        assert isinstance(body, dict)
                        if body["alerts"]:
                            break
                        await asyncio.sleep(0.1)  # bounded by the timeout above
                    process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                output = await reader
                await process.wait()
    text = output.decode()
    _skip_without_namespace(process, text)
    assert process.returncode == 0, text
    assert "Read-only file system" not in text
    assert failed
    assert failed in text  # the console sink printed the alert
    assert (state_dir / "state.db").is_file()
