"""The simulated Zaia API over HTTP (aiohttp), and a server to run it on loopback
(through `relay.http.runner`, as the relay serves its own HTTP).

Invariants:
- The three API endpoints behave as the OpenAPI document says: same paths, query
  parameters, JSON shapes and error bodies (`name`, `message`, `code`, `feedback`).
- Every request to an API endpoint is counted in `workspace.requests` under "list",
  "get" or "nestings", whether it succeeds, is refused or suffers a fault.
- A fault is applied before authentication, as a proxy in front of the API would.
- Delays end early when the server closes, so shutting down never waits on a fault.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from relay.http.runner import ServedApp, serve_app
from relay.lifecycle import AsyncContext
from relay.sim.control import add_control_routes
from relay.sim.faults import Endpoint, Fault
from relay.sim.payloads import error_body, html_error_page
from relay.sim.workspace import FollowUpMessageError, SimWorkspace, UnknownExecutionError

WORKSPACE = web.AppKey("zaia_sim_workspace", SimWorkspace)
CLOSING = web.AppKey("zaia_sim_closing", asyncio.Event)

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_INTEGER = re.compile(r"^\s*\d+\s*$")


class _BadRequest(Exception):
    pass


def json_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(status, message), status=status, headers=headers)


def _json_bytes(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json", charset="utf-8")


def _authorized(request: web.Request, workspace: SimWorkspace) -> bool:
    given = request.headers.get("Authorization", "").strip()
    scheme, _, rest = given.partition(" ")
    if scheme.lower() == "bearer":
        given = rest.strip()
    return bool(given) and hmac.compare_digest(given.encode(), workspace.api_key.encode())


async def _apply_fault(request: web.Request, fault: Fault) -> web.Response | None:
    """The response a fault replaces the answer with, or None to answer normally."""
    status = fault.effective_status
    if fault.kind == "delay":
        closing = request.app[CLOSING]
        try:
            await asyncio.wait_for(closing.wait(), timeout=fault.delay_s)
        except TimeoutError:
            return None
        return json_error(503, "The server is shutting down.")
    if fault.kind == "retry_after":
        return json_error(
            status,
            "Too many requests; retry later.",
            headers={"Retry-After": fault.effective_retry_after},
        )
    if fault.kind == "non_json":
        return web.Response(text=html_error_page(status), status=status, content_type="text/html")
    return json_error(status, "The service is temporarily unavailable.")


async def _serve(
    request: web.Request, endpoint: Endpoint, answer: Callable[[SimWorkspace], web.Response]
) -> web.Response:
    workspace = request.app[WORKSPACE]
    workspace.requests[endpoint] += 1
    fault = workspace.take_fault(endpoint)
    if fault is not None:
        replaced = await _apply_fault(request, fault)
        if replaced is not None:
            return replaced
    if not _authorized(request, workspace):
        return json_error(401, "Invalid or missing API key in the Authorization header.")
    try:
        return answer(workspace)
    except _BadRequest as exc:
        return json_error(400, str(exc))
    except UnknownExecutionError:
        return json_error(404, "Execution not found.")
    except FollowUpMessageError:
        return json_error(
            412,
            "The chat message is a follow-up response without executions; "
            "use the trigger chat message.",
        )


def _int_param(request: web.Request, name: str, *, default: int, maximum: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.match(raw):
        raise _BadRequest(f"{name} must be a whole number, not {raw!r}.")
    value = int(raw)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f"between 1 and {maximum}" if maximum is not None else "at least 1"
        raise _BadRequest(f"{name} must be {bound}, not {value}.")
    return value


def _uuid_param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _UUID.match(raw):
        raise _BadRequest(f"{name} must be a UUID, not {raw!r}.")
    return raw.lower()


def _responder_ids(request: web.Request) -> list[str]:
    found: list[str] = []
    for key in ("responderIds", "responderIds[]"):
        for value in request.query.getall(key, []):
            found.extend(part.strip() for part in value.split(",") if part.strip())
    for value in found:
        if not _UUID.match(value):
            raise _BadRequest(f"responderIds must be UUIDs, not {value!r}.")
    return list(dict.fromkeys(found))


async def list_executions(request: web.Request) -> web.Response:
    def answer(workspace: SimWorkspace) -> web.Response:
        page_number = _int_param(request, "pageNumber", default=1, maximum=None)
        page_size = _int_param(
            request, "pageSize", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE
        )
        body = workspace.page_json(
            page_number=page_number, page_size=page_size, responder_ids=_responder_ids(request)
        )
        return _json_bytes(body)

    return await _serve(request, "list", answer)


async def get_execution(request: web.Request) -> web.Response:
    def answer(workspace: SimWorkspace) -> web.Response:
        # The document gives this path no 400: a malformed id is simply not found.
        return _json_bytes(workspace.execution_json(request.match_info["id"]))

    return await _serve(request, "get", answer)


async def get_nestings(request: web.Request) -> web.Response:
    def answer(workspace: SimWorkspace) -> web.Response:
        execution_id = _uuid_param(request, "executionId")
        chat_message_id = _uuid_param(request, "chatMessageId")
        if execution_id is None and chat_message_id is None:
            raise _BadRequest("At least one of executionId or chatMessageId must be provided.")
        return _json_bytes(
            workspace.tree_json(execution_id=execution_id, chat_message_id=chat_message_id)
        )

    return await _serve(request, "nestings", answer)


# Told of every API request (not the control API): the request, the status it was
# answered with, and its arrival (time.monotonic(), taken before the answer is made).
OnApiRequest = Callable[[web.Request, int, float], None]


def _observing(on_api_request: OnApiRequest) -> Middleware:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived_s = time.monotonic()
        response = await handler(request)
        if request.path.startswith("/api/"):
            on_api_request(request, response.status, arrived_s)
        return response

    return observe


def create_app(
    workspace: SimWorkspace,
    *,
    control: bool = True,
    on_api_request: OnApiRequest | None = None,
    middlewares: Sequence[Middleware] = (),
) -> web.Application:
    """The simulated API; with `control`, also the unauthenticated `/_sim/` control API
    (a loopback test tool: never expose it). `middlewares` run inside the observer: a
    test rewrites there an answer no workspace gives (a shape the relay does not know)."""
    observer = [] if on_api_request is None else [_observing(on_api_request)]
    app = web.Application(middlewares=[*observer, *middlewares])
    app[WORKSPACE] = workspace
    app[CLOSING] = asyncio.Event()
    # "nestings" is registered before "{id}" so that it is not taken for an id.
    app.router.add_get("/api/v1/executions", list_executions)
    app.router.add_get("/api/v1/executions/nestings", get_nestings)
    app.router.add_get("/api/v1/executions/{id}", get_execution)
    if control:
        add_control_routes(app, workspace)
    return app


class SimServer(AsyncContext):
    """Runs the simulated API on a TCP port: `async with SimServer(ws) as srv: srv.url`."""

    def __init__(
        self,
        workspace: SimWorkspace,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control: bool = True,
        on_api_request: OnApiRequest | None = None,
        middlewares: Sequence[Middleware] = (),
    ) -> None:
        self.workspace = workspace
        self.host = host
        self._requested_port = port
        self._control = control
        self._on_api_request = on_api_request
        self._middlewares = middlewares
        self._served: ServedApp | None = None

    @property
    def port(self) -> int:
        if self._served is None:
            raise RuntimeError("the simulator is not started")
        return self._served.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        app = create_app(
            self.workspace,
            control=self._control,
            on_api_request=self._on_api_request,
            middlewares=self._middlewares,
        )
        self._served = await serve_app(
            app, host=self.host, port=self._requested_port, shutdown_timeout_s=2.0
        )

    async def close(self) -> None:
        served, self._served = self._served, None
        if served is None:
            return
        served.app[CLOSING].set()  # ends the delays of faults in flight
        await served.stop()

    async def _enter(self) -> None:
        await self.start()

    async def _exit(self) -> None:
        await self.close()
