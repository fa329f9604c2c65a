"""The relay's HTTP surface: probes, metrics, the status page and the admin API.

    GET  /healthz                      the process is alive (always 200)
    GET  /readyz                       200, or 503 with JSON reasons: store unreachable,
                                       store unwritable (disk full, read-only), source
                                       unauthorized, source stale (> 3 intervals)
    GET  /metrics                      Prometheus text (OpenMetrics when asked)
    GET  /                             status page (HTML, refreshes itself)
    GET  /alerts/{id}                  one alert's page (HTML; 404 page when unknown)
    GET|POST /signin, POST /signout    the operator's session: see `relay.http.signin`
    POST /alerts/{id}/silence|ack, /silences/{id}/expire, /deliveries/replay
                                       the pages' forms: see `relay.http.status_actions`
    /api/v1/...                        see `relay.http.admin_api`
    POST /-/reload                     see `relay.http.reload_api`
    POST /slack/interactions           Slack button clicks, Slack-signed (no admin token):
                                       see `relay.http.slack_actions`

Invariants:
- Probes and metrics never need a token nor a listed Host (`relay.http.access` guards
  the rest: `server.allowed_hosts`, `server.read_token`), and never fail because the store is
  down: `/metrics` keeps the last outbox counts, `/readyz` reports the store as a reason.
- Every response body passes the secret scrubber (`relay.scrub`, see `relay.http.common`).
- `HttpServer` runs the app through `relay.http.runner` (`AppRunner(handle_signals=False)`):
  signals belong to the composition root. `stop()` cleans up under `asyncio.shield`, so
  a cancelled shutdown still closes the listening socket and open connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from relay import __version__
from relay.clock import utcnow
from relay.domain.silences import config_silences as silences_from_settings
from relay.durations import format_age_s
from relay.errors import StoreError
from relay.http.access import access_middleware
from relay.http.admin_api import add_api_routes
from relay.http.alert_page import alert_page
from relay.http.common import (
    CONTEXT,
    RESPONSE_HEADERS,
    SAFE_METHODS,
    ApiError,
    HttpContext,
    check_admin,
    json_response,
    source_state,
)
from relay.http.reload_api import add_reload_route
from relay.http.runner import ServedApp, serve_app
from relay.http.signin import add_signin_routes, is_page_action
from relay.http.slack_actions import SLACK_PATH, add_slack_routes
from relay.http.status_actions import add_status_action_routes
from relay.http.status_data import source_order, status_page
from relay.http.status_stats import STATS_CACHE, StatsCache
from relay.lifecycle import AsyncContext
from relay.scrub import SecretScrubber

if TYPE_CHECKING:
    from relay.domain.silences import Silence
    from relay.pipeline.poller import SourceHealth
    from relay.settings import Settings
    from relay.store import Store
    from relay.telemetry.metrics import RelayMetrics

__all__ = ["HttpServer", "build_app", "readiness"]

log = structlog.get_logger("relay.http.server")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Request bodies are small JSON documents (a silence, a list of ids).
_MAX_BODY_BYTES = 64 * 1024
# Headers of an aiohttp HTTPException that describe its text body, replaced by ours.
_BODY_HEADERS = frozenset({"content-type", "content-length"})
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def build_app(
    *,
    metrics: RelayMetrics,
    store: Store,
    health: Mapping[str, SourceHealth],
    settings: Settings,
    now: Callable[[], datetime] = utcnow,
    config_silences: Sequence[Silence] | None = None,
    on_deliveries_retried: Callable[[], None] | None = None,
    store_timeout_s: float = 3.0,
    status_refresh_s: int = 10,
) -> web.Application:
    """The aiohttp application. `health` is read live (the pollers update it in place);
    `config_silences` (by default those of `settings.silences`) are listed beside the
    stored ones but never stored or expired through the API."""
    context = HttpContext(
        metrics=metrics,
        store=store,
        health=health,
        settings=settings,
        now=now,
        scrubber=SecretScrubber.from_settings(settings),
        config_silences=tuple(
            silences_from_settings(settings.silences, intervals=settings.intervals())
            if config_silences is None
            else config_silences
        ),
        on_deliveries_retried=on_deliveries_retried,
        store_timeout_s=store_timeout_s,
        status_refresh_s=status_refresh_s,
    )
    app = web.Application(
        middlewares=[_errors_middleware, access_middleware, _admin_middleware],
        client_max_size=_MAX_BODY_BYTES,
    )
    app[CONTEXT] = context
    app[STATS_CACHE] = cache = StatsCache()
    app.on_cleanup.append(cache.close)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", status_page)
    app.router.add_get("/alerts/{id}", alert_page)
    add_api_routes(app)
    add_reload_route(app)
    add_signin_routes(app)
    add_status_action_routes(app)
    add_slack_routes(app, now=now)
    return app


# --- middlewares ------------------------------------------------------------------------


@web.middleware
async def _errors_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Turns every error into JSON and scrubs every body of secrets."""
    context = request.app[CONTEXT]
    try:
        response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect
            for name, value in RESPONSE_HEADERS.items():
                exc.headers.setdefault(name, value)
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in _BODY_HEADERS}
        code = _STATUS_CODES.get(exc.status, "error")
        message = exc.reason if exc.status != 404 else f"no such endpoint: {request.path}"
        if exc.status == 413:
            message = f"request body larger than {_MAX_BODY_BYTES} bytes"
        response = ApiError(exc.status, code, message, headers=headers).response()
    except StoreError as exc:
        log.warning("http.store_failed", path=request.path, error=str(exc))
        response = ApiError(503, "store_unavailable", str(exc)).response()
    except Exception:
        log.exception("http.failed", method=request.method, path=request.path)
        response = ApiError(
            500, "internal", "internal error; the relay's logs have the details"
        ).response()
    if not response.prepared:
        for name, value in RESPONSE_HEADERS.items():
            response.headers.setdefault(name, value)
    if isinstance(response, web.Response) and response.body is not None:
        body = response.body
        if isinstance(body, bytes):
            scrubbed = context.scrubber.scrub(body)
            if scrubbed is not body:
                response.body = scrubbed
    return response


@web.middleware
async def _admin_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Every mutating call needs the admin token, whatever its route, but Slack's (Slack
    signs its calls, `relay.http.slack_actions`) and the pages' forms (a session cookie
    and a CSRF token instead, `relay.http.signin`)."""
    page_form = is_page_action(request.match_info.handler)
    if request.method not in SAFE_METHODS and request.path != SLACK_PATH and not page_form:
        check_admin(request, token=request.app[CONTEXT].admin_token)
    return await handler(request)


# --- probes and metrics -----------------------------------------------------------------


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "version": __version__})


async def readiness(context: HttpContext) -> list[dict[str, str]]:
    """Why the relay is not ready (an empty list when it is)."""
    reasons: list[dict[str, str]] = []
    store_problem: str | None = None
    try:
        async with asyncio.timeout(context.store_timeout_s):
            await context.store.ping()
    except StoreError as exc:
        store_problem = str(exc)
    except TimeoutError:
        store_problem = f"the store did not answer within {context.store_timeout_s:g}s"
    if store_problem is not None:
        reasons.append({"check": "store", "reason": "store_unreachable", "message": store_problem})
    elif (refusal := await _writes_refused(context)) is not None:
        reasons.append({"check": "store", "reason": "store_unwritable", "message": refusal})
    now = context.now()
    for name in source_order(context):
        health = context.health[name]
        state = source_state(health, now=now)
        if state == "unauthorized":
            reasons.append(
                {
                    "check": "source",
                    "source": name,
                    "reason": "source_unauthorized",
                    "message": health.last_error
                    or f"the Zaia API refused the key of source {name!r}",
                }
            )
        elif health.is_stale(now=now):
            if health.last_success_at is None:
                message = f"source {name!r} has not been polled successfully yet"
            else:
                age = format_age_s((now - health.last_success_at).total_seconds())
                message = (
                    f"no successful poll of source {name!r} for {age}, more than 3 poll "
                    f"intervals of {health.interval_s:g}s"
                )
            if health.last_error:
                message += f"; last error: {health.last_error}"
            reasons.append(
                {"check": "source", "source": name, "reason": "source_stale", "message": message}
            )
    return reasons


async def _writes_refused(context: HttpContext) -> str | None:
    """Why the store refuses writes (it answers reads), or None: tried again each time."""
    try:
        async with asyncio.timeout(context.store_timeout_s):
            return await context.store.writes_refused()
    except TimeoutError:
        return f"a write to the store did not finish within {context.store_timeout_s:g}s"


async def _readyz(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    reasons = await readiness(context)
    if reasons:
        return json_response({"status": "unready", "reasons": reasons}, status=503)
    sources = {name: "ok" for name in source_order(context)}
    return json_response({"status": "ready", "checks": {"store": "ok", "sources": sources}})


async def _metrics(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    # The outbox gauges are read from the store at scrape time, so they are exact
    # whichever replica delivered; a store that does not answer keeps the last values.
    try:
        async with asyncio.timeout(context.store_timeout_s):
            counts = await context.store.outbox_counts()
    except (StoreError, TimeoutError) as exc:
        log.warning("metrics.outbox_unavailable", error=str(exc) or type(exc).__name__)
    else:
        context.metrics.set_outbox({sink: (c.pending, c.dead) for sink, c in counts.items()})
    body, content_type = context.metrics.exposition(request.headers.get("Accept"))
    response = web.Response(body=body)
    # The content type carries parameters (version, charset) that aiohttp's
    # `content_type=` argument would reject, so it is set as a raw header.
    response.headers["Content-Type"] = content_type
    return response


# --- runner -----------------------------------------------------------------------------


class HttpServer(AsyncContext):
    """Serves an aiohttp app on `host:port` (port 0 picks a free one).

    `async with HttpServer(app, host=..., port=...) as server:` or `start()`/`stop()`;
    `serve()` is the long-running form for a TaskGroup: it starts, waits until
    cancelled, and stops.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        host: str,
        port: int,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._shutdown_timeout_s = shutdown_timeout_s
        self._served: ServedApp | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the HTTP server is not started")
        return self._port

    @property
    def url(self) -> str:
        """A URL clients on this machine can use (a wildcard host becomes loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self._host, self._host)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; raises OSError when the address is taken."""
        if self._served is not None:
            return
        self._served = await serve_app(
            self._app,
            host=self._host,
            port=self._requested_port,
            shutdown_timeout_s=self._shutdown_timeout_s,
        )
        self._port = self._served.port
        log.info("http.listening", url=self.url, host=self._host, port=self._port)

    async def stop(self) -> None:
        """Close the socket and connections; idempotent; completes even if cancelled."""
        served, self._served = self._served, None
        self._port = None
        if served is not None:
            await served.stop()
            log.info("http.stopped")

    async def serve(self) -> None:
        """Start, then serve until cancelled; always stops."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _enter(self) -> None:
        await self.start()

    async def _exit(self) -> None:
        await self.stop()
