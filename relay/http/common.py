"""What the HTTP modules share: the request context, JSON errors and auth.

Invariants:
- Every error leaves the server as JSON: `{"error": CODE, "message": TEXT}` (plus
  `problems` for invalid input), with a status code that says whose fault it is.
- A mutating call (any method but GET/HEAD/OPTIONS) needs `Authorization: Bearer
  <admin_token>`, compared with `hmac.compare_digest`; with no token configured every
  mutating call is refused (403), whatever it sends. The exceptions are Slack's
  `POST /slack/interactions`, which Slack signs instead (`relay.http.slack_actions`),
  and the pages' forms, which need a session and its CSRF token (`relay.http.signin`).
- `HttpContext.scrubber` (`relay.scrub.SecretScrubber`) holds every secret of the
  configuration; the server passes every response body through it as a last line of
  defence, so even an error message that quoted a secret by accident never leaves the
  process with it. Handlers still never put secrets in responses in the first place.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from relay.domain.silences import Silence
    from relay.http.status_page import SourceState
    from relay.pipeline.poller import SourceHealth
    from relay.reload import ReloadOutcome
    from relay.scrub import SecretScrubber
    from relay.settings import Settings
    from relay.store import Store
    from relay.telemetry.metrics import RelayMetrics

__all__ = [
    "CONTEXT",
    "PAGE_HEADERS",
    "RESPONSE_HEADERS",
    "SAFE_METHODS",
    "ApiError",
    "HttpContext",
    "check_admin",
    "html_response",
    "json_response",
    "source_state",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGE_HEADERS: Mapping[str, str] = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}
# On every response (the server's middleware), unless the handler set its own.
RESPONSE_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@dataclass(kw_only=True)
class HttpContext:
    """Everything the handlers read; built once by `relay.http.server.build_app`.

    A configuration reload replaces `settings`, `scrubber` and `config_silences`, each
    as a whole (handlers read them afresh per request), and `health` changes in place.
    """

    metrics: RelayMetrics
    store: Store
    health: Mapping[str, SourceHealth]
    settings: Settings
    now: Callable[[], datetime]
    scrubber: SecretScrubber
    config_silences: Sequence[Silence] = ()
    # Called after dead letters were put back to pending, so delivery workers look now.
    on_deliveries_retried: Callable[[], None] | None = None
    store_timeout_s: float = 3.0
    status_refresh_s: int = 10
    # Set by the daemon when it can reload its configuration (`POST /-/reload`).
    on_reload: Callable[[], Awaitable[ReloadOutcome]] | None = None

    @property
    def admin_token(self) -> str | None:
        token = self.settings.server.admin_token
        value = token.get_secret_value() if token is not None else ""
        return value or None


CONTEXT: web.AppKey[HttpContext] = web.AppKey("relay_context", HttpContext)


class ApiError(Exception):
    """An error answered to the client as JSON; `message` says what to do."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        problems: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.problems is not None:
            body["problems"] = list(self.problems)
        return json_response(body, status=self.status, headers=self.headers)


def json_response(
    body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    text = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    response = web.Response(
        text=text, status=status, content_type="application/json", headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def html_response(
    text: str, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A server-rendered page; never cached (it shows live state, and forms' tokens),
    never framed (its buttons act: no clickjacking), and loading nothing: no script
    at all, only its inline style and SVG, its forms posting to this origin."""
    response = web.Response(text=text, status=status, content_type="text/html", headers=headers)
    response.headers.update(PAGE_HEADERS)
    return response


def check_admin(request: web.Request, *, token: str | None) -> None:
    """Raise `ApiError` unless the request carries the admin token."""
    if token is None:
        raise ApiError(
            403,
            "admin_disabled",
            "mutating calls are disabled because no admin token is configured; set "
            "server.admin_token (or RELAY_SERVER__ADMIN_TOKEN) and send it as "
            "'Authorization: Bearer <token>'",
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest on bytes of any content; its time does not depend on where the
    # strings differ, so the token cannot be guessed one character at a time.
    ok = hmac.compare_digest(given.strip().encode(), token.encode())
    if scheme.lower() != "bearer" or not ok:
        raise ApiError(
            401,
            "unauthorized",
            "this call needs 'Authorization: Bearer <admin token>' with the token "
            "configured as server.admin_token",
            headers={"WWW-Authenticate": 'Bearer realm="zaia-relay"'},
        )


def source_state(health: SourceHealth, *, now: datetime) -> SourceState:
    """One word for a source's health: standby, unauthorized, starting, failing, stale
    or ok."""
    if health.standby:
        return "standby"
    if health.unauthorized:
        return "unauthorized"
    if health.last_success_at is None:
        return "failing" if health.consecutive_failures else "starting"
    if health.is_stale(now=now):
        return "stale"
    return "failing" if health.consecutive_failures else "ok"
