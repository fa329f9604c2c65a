"""`python -m relay.sim`: serve a simulated workspace on loopback until SIGTERM/SIGINT.

For benches and end-to-end tests that drive the relay as a separate process: the
workspace is controlled through the `/_sim/` API. The first line printed is
`SIM_URL=http://127.0.0.1:PORT`, so a caller can read where it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from relay.sim.app import SimServer
from relay.sim.workspace import SimWorkspace


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m relay.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", type=int, default=0, help="executions to seed")
    parser.add_argument("--running", type=int, default=0, help="of which still running")
    parser.add_argument("--order", choices=("created", "updated"), default="created")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    workspace = SimWorkspace(api_key=args.api_key, seed=args.seed, order=args.order)
    if args.history:
        workspace.seed_history(args.history, running=args.running)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with SimServer(workspace, host=args.host, port=args.port) as server:
        print(f"SIM_URL={server.url}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(_parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
