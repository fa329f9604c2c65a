"""`zaia-relay demo`: a simulated workspace, the relay and a console sink, no account needed.

Everything runs in this process on 127.0.0.1: the simulator (relay.sim) plays the story
in `demo_script`, the relay polls it with the packaged `demo.yaml`, state lives in a
temporary directory that is removed on exit.
"""

from __future__ import annotations

import asyncio
import errno
import random
import secrets
import socket
import sys
import tempfile
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from relay.app import run_daemon
from relay.cli.demo_script import STORY, background_traffic, seed_workspace
from relay.settings import Settings
from relay.settings.loader import parse_settings
from relay.sim import SimServer, SimWorkspace

DEMO_API_KEY = "demo-key"
FIRST_PORT = 8080
PORTS_TO_TRY = 20
TRAFFIC_EVERY_S = 2.0


def demo_settings_text() -> str:
    return files("relay").joinpath("demo.yaml").read_text(encoding="utf-8")


def free_port(host: str, first: int, *, tries: int = PORTS_TO_TRY) -> int:
    """`first`, or the next port up that nothing listens on."""
    for port in range(first, first + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return port
    raise OSError(f"no free port on {host} between {first} and {first + tries - 1}")


def demo_settings(
    *, sim_url: str, state_dir: Path, port: int, admin_token: str | None = None
) -> Settings:
    settings = parse_settings(demo_settings_text(), environ={}, source="demo.yaml")
    sources = [s.model_copy(update={"base_url": sim_url}) for s in settings.sources]
    store = settings.store.model_copy(update={"url": f"sqlite:///{state_dir}/state.db"})
    server = settings.server.model_copy(
        # `model_copy` does not validate: the token goes in as the secret it would be.
        update={
            "listen": f"127.0.0.1:{port}",
            "admin_token": None if admin_token is None else SecretStr(admin_token),
        }
    )
    return settings.model_copy(update={"sources": sources, "store": store, "server": server})


async def play_story(workspace: SimWorkspace, *, say: Callable[[str], None], seed: int = 0) -> None:
    """Play the scripted beats on time, with background traffic in between; runs until
    cancelled."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    started = loop.time()
    beats = list(STORY)
    while True:
        elapsed = loop.time() - started
        while beats and beats[0].at_s <= elapsed:
            beat = beats.pop(0)
            say(f"demo: {beat.what}")
            beat.act(workspace, rng)
        background_traffic(workspace, rng)
        next_beat = beats[0].at_s - elapsed if beats else TRAFFIC_EVERY_S
        await asyncio.sleep(max(0.05, min(TRAFFIC_EVERY_S, next_beat)))


async def run_demo(*, out: TextIO = sys.stdout) -> None:
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    workspace = SimWorkspace(api_key=DEMO_API_KEY, seed=2026)
    seed_workspace(workspace)
    with tempfile.TemporaryDirectory(prefix="zaia-relay-demo-") as state_dir:
        async with SimServer(workspace) as sim:
            port = free_port("127.0.0.1", FIRST_PORT)
            # A fresh token each run, printed: the demo listens on 127.0.0.1 only, and a
            # newcomer needs one to try the admin API and `silences add --url`.
            token = secrets.token_urlsafe(18)
            settings = demo_settings(
                sim_url=sim.url, state_dir=Path(state_dir), port=port, admin_token=token
            )
            url = f"http://127.0.0.1:{port}"
            say(
                "zaia-relay demo: a simulated Zaia workspace and the relay, all on this machine.\n"
                f"  status page  {url}/\n"
                f"  metrics      {url}/metrics\n"
                f"  alerts API   {url}/api/v1/alerts\n"
                f"  admin token  {token}\n"
                f"  sign in      {url}/signin with it to silence and acknowledge from the page\n"
                "  silence an agent from another shell:\n"
                f"    RELAY_ADMIN_TOKEN={token} zaia-relay silences add --url {url} \\\n"
                "      'responder=\"Sales Qualifier\"' --duration 1h --comment 'trying the demo'\n"
                "  Alerts appear below within seconds. Press Ctrl-C to stop."
            )
            await run_daemon(
                settings,
                extra_tasks={"demo-story": lambda: play_story(workspace, say=say)},
            )
