"""The relay runs with a read-only root filesystem, as the image and the chart run it.

The relay runs in a private mount namespace (`unshare --mount`) where `/` is remounted
read-only, `/tmp` is a fresh tmpfs and only the state directory is writable, like the
container's volume. A poll cycle against the simulator must succeed and leave its state
in that directory: any other write fails the run with "Read-only file system".
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from relay.sim import SimServer, SimWorkspace
from tests.deploy_support import require_tool

# The script exits with this code when the namespace cannot be set up (no privileges):
# the test is then skipped, since it says nothing about the relay.
NO_NAMESPACE = 97
STATE = "/mnt"  # an existing mount point; the container's /var/lib/zaia-relay

SCRIPT = f"""
set -e
mount --bind "$STATE_DIR" {STATE} || exit {NO_NAMESPACE}
mount -o remount,bind,ro / || exit {NO_NAMESPACE}
mount -t tmpfs -o size=16m tmpfs /tmp || exit {NO_NAMESPACE}
if touch /read-only-probe 2>/dev/null; then exit {NO_NAMESPACE}; fi
cd {STATE}
exec "$@"
"""


@pytest.mark.slow
async def test_a_poll_cycle_needs_only_the_state_volume_and_tmp(tmp_path: Path) -> None:
    unshare = require_tool("unshare")
    if os.geteuid() != 0:
        pytest.skip("needs root to make a mount namespace with a read-only root")
    workspace = SimWorkspace(api_key="read-only-key", seed=3)
    for status in ("running", "completed", "failed"):
        workspace.create_execution(status=status)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    async with SimServer(workspace) as sim:
        (state_dir / "relay.yaml").write_text(
            f"""
sources:
  - name: prod
    base_url: {sim.url}
    api_key: ${{ZAIA_API_KEY}}
store:
  url: sqlite://{STATE}/state.db
log:
  format: json
"""
        )
        process = await asyncio.create_subprocess_exec(
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            SCRIPT,
            "sh",
            sys.executable,
            "-m",
            "relay",
            "once",
            "-c",
            f"{STATE}/relay.yaml",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **os.environ,
                "STATE_DIR": str(state_dir),
                "ZAIA_API_KEY": workspace.api_key,
                "TMPDIR": "/tmp",
                "HOME": STATE,
                "PYTHONDONTWRITEBYTECODE": "1",
            },
        )
        async with asyncio.timeout(60):
            stdout, stderr = await process.communicate()
    output = stdout.decode() + stderr.decode()
    if process.returncode == NO_NAMESPACE:
        pytest.skip(f"cannot make a mount namespace with a read-only root here: {output}")
    assert process.returncode == 0, output
    assert "Read-only file system" not in output
    # The state landed on the writable volume, and the cycle found the executions.
    assert (state_dir / "state.db").is_file()
    assert "3 execution(s) observed" in stdout.decode()
