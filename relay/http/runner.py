"""Serving an aiohttp app on a TCP port: the relay's HTTP server and the simulator both
start and stop their apps here.

Invariants:
- aiohttp installs no signal handlers (`handle_signals=False`): the daemon owns
  SIGTERM/SIGINT, and a test's event loop is not disturbed.
- No access log: requests are counted in metrics, not logged one by one.
- A failed bind (`OSError`: the address is taken) releases what setup took before it
  propagates, and stopping completes even when the caller is cancelled (shielded), so
  a cancelled test or daemon still frees the port.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class ServedApp:
    """An app being served; `port` is the one bound (useful when 0 was asked for)."""

    runner: web.AppRunner
    port: int

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def stop(self) -> None:
        """Close the socket and the open connections; completes even if cancelled."""
        await asyncio.shield(self.runner.cleanup())


async def serve_app(
    app: web.Application, *, host: str, port: int, shutdown_timeout_s: float
) -> ServedApp:
    """Bind `app` to `host:port` (port 0 picks a free one) and serve it until `stop()`;
    raises OSError when the address is taken."""
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout_s
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await asyncio.shield(runner.cleanup())
        raise
    return ServedApp(runner, int(runner.addresses[0][1]))


__all__ = ["ServedApp", "serve_app"]
