"""`POST /-/reload`: read the configuration file again (as SIGHUP does).

    POST /-/reload   200 {"status": "reloaded", "changed": BOOL, "sections": [...],
                     "sources_added": [...], ..., "sinks_changed": [...]}; 422 with
                     `problems` (check-config's `path: message`, split) when the file
                     is invalid or changes a restart-only field; 404 when this
                     process cannot reload (`zaia-relay once`, tests).

Invariants:
- Admin only (the server's admin middleware guards every POST).
- The answer names sections, sources and sinks, never a setting's value.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from relay.http.common import CONTEXT, ApiError, json_response

__all__ = ["add_reload_route"]


def add_reload_route(app: web.Application) -> None:
    app.router.add_post("/-/reload", _reload)


async def _reload(request: web.Request) -> web.Response:
    reload = request.app[CONTEXT].on_reload
    if reload is None:
        raise ApiError(404, "not_found", "this process does not reload its configuration")
    # A client that hangs up must not cut a reload short half-applied.
    outcome = await asyncio.shield(reload())
    if not outcome.ok:
        listed = "; ".join(str(p) for p in outcome.problems)
        raise ApiError(
            422,
            "invalid",
            f"the configuration was not reloaded (the running one stays): {listed}",
            problems=[{"path": p.path, "message": p.message} for p in outcome.problems],
        )
    return json_response(
        {"status": "reloaded", "changed": outcome.plan.changed, **outcome.plan.summary()}
    )
