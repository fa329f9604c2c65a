"""The `/_sim/` control API: drive a simulated workspace from another process.

Subprocess tests, benches and the demo use it to create and move executions and to
inject faults while the relay polls. It mirrors the `SimWorkspace` methods one to one.

Invariants:
- No authentication: it is a loopback test tool, mounted only when asked for.
- Bodies are JSON objects with the methods' keyword names (snake_case); an unknown
  execution is a 404 and any invalid input a 400, each as `{"error": "..."}`.
- Control requests are not counted in `workspace.requests` and never suffer faults.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from relay.sim.catalog import KINDS
from relay.sim.faults import Fault
from relay.sim.workspace import SimWorkspace, UnknownExecutionError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CREATE_FIELDS = frozenset(
    {
        "kind",
        "status",
        "responder_id",
        "parent_id",
        "credits_used",
        "created_at",
        "ended_at",
        "is_agentic",
        "origin_type",
        "error",
    }
)
_CHILD_FIELDS = frozenset(
    {"kind", "status", "responder_id", "credits_used", "is_agentic", "origin_type"}
)


async def _body(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    raw = await request.read()
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValueError(f"unknown fields {unknown}; allowed: {sorted(allowed)}")
    for key in ("created_at", "ended_at"):
        if isinstance(value.get(key), str):
            value[key] = datetime.fromisoformat(value[key])
    return value


def _guard(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownExecutionError as exc:
            return web.json_response({"error": f"unknown execution {exc}"}, status=404)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    return guarded


def add_control_routes(app: web.Application, workspace: SimWorkspace) -> None:
    def execution(execution_id: str, status: int = 200) -> web.Response:
        return web.json_response(
            {"id": execution_id, "execution": workspace.raw(execution_id)}, status=status
        )

    async def create(request: web.Request) -> web.StreamResponse:
        return execution(workspace.create_execution(**await _body(request, _CREATE_FIELDS)), 201)

    async def list_ids(request: web.Request) -> web.StreamResponse:
        query = request.query
        kind = query.get("kind")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        ids = workspace.execution_ids(
            status=query.get("status"),
            kind=kind,
            roots_only=query.get("roots_only") == "true",
            with_children=query.get("with_children") == "true",
        )
        return web.json_response({"ids": ids})

    async def set_status(request: web.Request) -> web.StreamResponse:
        body = await _body(request, frozenset({"status", "error", "error_code"}))
        execution_id = request.match_info["id"]
        workspace.set_status(execution_id, body.pop("status", ""), **body)
        return execution(execution_id)

    async def add_credits(request: web.Request) -> web.StreamResponse:
        body = await _body(request, frozenset({"amount"}))
        execution_id = request.match_info["id"]
        amount = body.get("amount")
        if not isinstance(amount, int | float) or isinstance(amount, bool):
            raise ValueError("amount must be a number")
        workspace.add_credits(execution_id, amount)
        return execution(execution_id)

    async def purge(request: web.Request) -> web.StreamResponse:
        execution_id = request.match_info["id"]
        workspace.purge(execution_id)
        return execution(execution_id)

    async def delete(request: web.Request) -> web.StreamResponse:
        execution_id = request.match_info["id"]
        workspace.delete(execution_id)
        return web.json_response({"id": execution_id, "deleted": True})

    async def spawn_child(request: web.Request) -> web.StreamResponse:
        body = await _body(request, _CHILD_FIELDS)
        return execution(workspace.spawn_child(request.match_info["id"], **body), 201)

    async def add_fault(request: web.Request) -> web.StreamResponse:
        fields = frozenset({"kind", "endpoint", "times", "status", "retry_after", "delay_s"})
        workspace.inject_fault(Fault(**await _body(request, fields)))
        return web.json_response(workspace.stats(), status=201)

    async def clear_faults(request: web.Request) -> web.StreamResponse:
        workspace.clear_faults()
        return web.json_response(workspace.stats())

    async def seed(request: web.Request) -> web.StreamResponse:
        fields = frozenset(
            {"count", "running", "failed_ratio", "cancelled_ratio", "child_ratio", "purged"}
        )
        body = await _body(request, fields | {"span_s"})
        workspace.seed_history(body.pop("count", 0), **body)
        return web.json_response(workspace.stats())

    async def follow_up(request: web.Request) -> web.StreamResponse:
        body = await _body(request, frozenset({"chat_message_id"}))
        message_id = workspace.add_follow_up_message(body.get("chat_message_id"))
        return web.json_response({"chat_message_id": message_id}, status=201)

    async def stats(request: web.Request) -> web.StreamResponse:
        return web.json_response(workspace.stats())

    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/_sim/executions", create),
        ("GET", "/_sim/executions", list_ids),
        ("POST", "/_sim/executions/{id}/status", set_status),
        ("POST", "/_sim/executions/{id}/credits", add_credits),
        ("POST", "/_sim/executions/{id}/purge", purge),
        ("POST", "/_sim/executions/{id}/delete", delete),
        ("POST", "/_sim/executions/{id}/children", spawn_child),
        ("POST", "/_sim/faults", add_fault),
        ("DELETE", "/_sim/faults", clear_faults),
        ("POST", "/_sim/seed", seed),
        ("POST", "/_sim/follow-ups", follow_up),
        ("GET", "/_sim/stats", stats),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, _guard(handler))
