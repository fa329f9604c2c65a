"""`zaia-relay once`: one cycle, as a real subprocess against the simulator."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from relay.sim import SimServer, SimWorkspace

pytestmark = pytest.mark.slow

KEY = "once-test-key"


async def once(config: Path, *extra: str, key: str = KEY) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "once",
        "-c",
        str(config),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ZAIA_API_KEY": key},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def workspace() -> SimWorkspace:
    workspace = SimWorkspace(api_key=KEY, seed=3)
    workspace.seed_history(30, running=4)
    return workspace


async def test_once_prints_the_transitions_of_one_cycle(
    tmp_path: Path, workspace: SimWorkspace
) -> None:
    async with SimServer(workspace) as sim:
        config = tmp_path / "relay.yaml"
        config.write_text(
            f"sources:\n  - name: prod\n    base_url: {sim.url}\n    api_key: ${{ZAIA_API_KEY}}\n"
            f"store:\n  url: sqlite:///{tmp_path}/state.db\n"
            "rules:\n  - name: failed\n    when: {status: [failed]}\n    severity: critical\n"
            "    sinks: [out]\n"
            "sinks:\n  out:\n    type: console\n"
        )
        code, out, _ = await once(config)
        assert code == 0
        assert "first poll" in out
        assert f"{len(workspace)} baseline transition(s)" in out

        target = workspace.execution_ids(status="running")[0]
        workspace.set_status(target, "failed", error="the tool timed out")
        born = workspace.create_execution(status="cancelled")

        code, dry, _ = await once(config, "--dry-run")
        assert code == 0
        assert f"{target}  " in dry
        assert "running -> failed" in dry
        assert "dry run: nothing was stored or sent" in dry
        assert "alert critical failed: " in dry
        assert "-> out" in dry

        code, out, _ = await once(config)
        assert code == 0, "the dry run stored nothing, so the real run finds the same"
        # Transition lines (the console sink also prints the alert it delivered).
        lines = [
            line
            for line in out.splitlines()
            if (target in line or born in line) and "responder" in line
        ]
        assert len(lines) == 2
        assert "CRITICAL firing   failed [prod]" in out, "the real run delivered the alert"
        assert "running -> failed" in next(line for line in lines if target in line)
        assert "unknown -> cancelled" in next(line for line in lines if born in line)

        code, out, _ = await once(config)
        assert (code, "0 transition(s)" in out) == (0, True)

        code, out, err = await once(config, key="wrong-key")
        assert code == 1
        assert "check the API key for source 'prod' (sources.0.api_key)" in err
        assert "wrong-key" not in err + out


async def test_once_names_configured_responders(tmp_path: Path, workspace: SimWorkspace) -> None:
    responder = "cb364d8f-6e9c-48ed-b241-ac405da66337"
    async with SimServer(workspace) as sim:
        config = tmp_path / "relay.yaml"
        config.write_text(
            f"sources:\n  - name: prod\n    base_url: {sim.url}\n    api_key: ${{ZAIA_API_KEY}}\n"
            f"store:\n  url: sqlite:///{tmp_path}/state.db\n"
            f"responders:\n  {responder}: Sales Qualifier\n"
            "rules:\n  - name: failed\n    when: {status: [failed]}\n    severity: critical\n"
            "    sinks: [out]\n    labels: {team: sales}\n"
            "sinks:\n  out:\n    type: console\n    color: never\n"
        )
        code, _, _ = await once(config)
        assert code == 0
        failing = workspace.create_execution(kind="agent", responder_id=responder)
        code, _, _ = await once(config)
        workspace.set_status(failing, "failed", error="the CRM timed out")
        code, out, _ = await once(config)
    assert code == 0
    [transition] = [line for line in out.splitlines() if failing in line and "->" in line]
    assert f"responder Sales Qualifier ({responder})" in transition
    assert "alert critical failed: Sales Qualifier agent failed" in out
    delivered = next(line for line in out.splitlines() if "CRITICAL firing" in line)
    assert "Sales Qualifier agent failed" in delivered
    assert "team=sales" in delivered
