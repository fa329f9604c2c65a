"""Signing in to the status page with the admin token, and the checks every form's POST
passes (`relay.http.session` holds the pure parts).

    GET  /signin    the form (open even when reads are protected: it shows nothing)
    POST /signin    token=ADMIN_TOKEN&next=/path  -> 303 to next, with the session cookie
    POST /signout   csrf=...                      -> 303 to /, the cookie cleared

Invariants:
- The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, expires with its session
  (`SESSION_LIFETIME`), and is `Secure` when the request came over https (directly, or
  `X-Forwarded-Proto: https` from a proxy in front) or `server.secure_cookies` is set;
  plain http on localhost still works.
- A failed sign-in is logged as `http.signin_failed` with the client's address, never
  with what it sent; after `MAX_FAILURES` failures within `WINDOW` a client gets 429
  with `Retry-After` and its attempts are not even compared. The client is the peer
  address (`X-Forwarded-For` is not trusted: anyone can send it).
- `checked_form` is what every action does first: a cross-site request (`Sec-Fetch-Site`,
  `Origin`) is 403; no valid session is 303 to `/signin`; a missing or wrong CSRF token
  is 403. Nothing is read from the store before these pass.
- `next` is followed only when it is a path on this relay (`/...`, not `//host`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import structlog
from aiohttp import web
from multidict import MultiDictProxy

from relay.http.common import CONTEXT, html_response
from relay.http.html import STYLE
from relay.http.page_forms import signin_page
from relay.http.peers import client_address
from relay.http.session import (
    COOKIE_NAME,
    CSRF_FIELD,
    SESSION_LIFETIME,
    Session,
    SignedOut,
    SignInLimiter,
    cookie_value,
    cross_site_reason,
    csrf_ok,
    csrf_token,
    new_session,
    read_session,
    session_key,
)

__all__ = [
    "SIGNIN_PATH",
    "Refusal",
    "add_signin_routes",
    "checked_form",
    "is_page_action",
    "page_action",
    "page_csrf",
    "request_session",
    "see_other",
]

log = structlog.get_logger("relay.http.signin")

SIGNIN_PATH = "/signin"
SIGNOUT_PATH = "/signout"
LIMITER: web.AppKey[SignInLimiter] = web.AppKey("relay_signin_limiter", SignInLimiter)
SIGNED_OUT: web.AppKey[SignedOut] = web.AppKey("relay_signed_out", SignedOut)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PAGE_ACTIONS: set[object] = set()


class Refusal(Exception):
    """A form's POST refused: `response` says why (a page, or a redirect to sign in)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def add_signin_routes(app: web.Application) -> None:
    app[LIMITER] = SignInLimiter()
    app[SIGNED_OUT] = SignedOut()
    app.router.add_get(SIGNIN_PATH, _signin_form)
    app.router.add_post(SIGNIN_PATH, page_action(_signin))
    app.router.add_post(SIGNOUT_PATH, page_action(_signout))


def page_action(handler: _Handler) -> _Handler:
    """`handler`, answering with the refusal's page when it raises `Refusal`."""

    @wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as refusal:
            return refusal.response

    _PAGE_ACTIONS.add(run)
    return run


def is_page_action(handler: object) -> bool:
    """Whether `handler` is a page's form handler (it checks a session, not Bearer)."""
    return handler in _PAGE_ACTIONS


def see_other(location: str, *, headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(status=303, headers={"Location": location, **(headers or {})})
    response.headers["Cache-Control"] = "no-store"
    return response


def request_client(request: web.Request) -> str:
    """The client's address, behind `server.trusted_proxies` (`relay.http.peers`)."""
    return client_address(
        request.remote,
        forwarded_for=request.headers.getall("X-Forwarded-For", []),
        trusted=request.app[CONTEXT].settings.server.trusted_networks,
    )


def _key(request: web.Request) -> bytes | None:
    token = request.app[CONTEXT].admin_token
    return None if token is None else session_key(token)


def request_session(request: web.Request) -> Session | None:
    """The session the request's cookie names, or None (see `relay.http.session`)."""
    key = _key(request)
    value = request.cookies.get(COOKIE_NAME)
    if key is None or value is None:
        return None
    now = request.app[CONTEXT].now()
    return read_session(value, key=key, now=now, signed_out=request.app.get(SIGNED_OUT))


def page_csrf(request: web.Request) -> str | None:
    """The CSRF token a page's forms carry, or None when the request is signed out."""
    key = _key(request)
    session = request_session(request)
    return None if key is None or session is None else csrf_token(session, key=key)


def _refused_page(status: int, message: str) -> web.Response:
    return html_response(
        signin_page(style=STYLE, message=message, next_path="/", enabled=True), status=status
    )


async def checked_form(request: web.Request) -> tuple[Session, MultiDictProxy[Any]]:
    """The session and the form of an action's POST, or `Refusal` (module invariants)."""
    if (reason := cross_site_reason(request.headers)) is not None:
        raise Refusal(_refused_page(403, f"Refused: {reason}."))
    key = _key(request)
    session = request_session(request)
    if key is None or session is None:
        back = request.headers.get("Referer", "")
        raise Refusal(see_other(f"{SIGNIN_PATH}?next={quote(_local(back), safe='/')}"))
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if not csrf_ok(session, given if isinstance(given, str) else None, key=key):
        raise Refusal(_refused_page(403, "Refused: the form's CSRF token is missing or wrong."))
    return session, form


def _local(target: str) -> str:
    """`target` when it is a path on this relay, else `/`: no open redirect."""
    if "://" in target:  # a Referer is absolute; keep its path and query
        _, _, rest = target.partition("://")
        target = "/" + rest.partition("/")[2]
    ok = (
        target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and len(target) <= 500
        and target.isprintable()
        and not target.startswith(SIGNIN_PATH)
    )
    return target if ok else "/"


def _secure(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return (
        request.secure
        or forwarded == "https"
        or request.app[CONTEXT].settings.server.secure_cookies
    )


async def _signin_form(request: web.Request) -> web.Response:
    enabled = request.app[CONTEXT].admin_token is not None
    next_path = _local(request.query.get("next", "/"))
    return html_response(
        signin_page(style=STYLE, message=None, next_path=next_path, enabled=enabled)
    )


async def _signin(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    token = context.admin_token
    if (reason := cross_site_reason(request.headers)) is not None:
        return _refused_page(403, f"Refused: {reason}.")
    if token is None:
        page = signin_page(style=STYLE, message=None, next_path="/", enabled=False)
        return html_response(page, status=403)
    now = context.now()
    client = request_client(request)
    limiter = request.app[LIMITER]
    form = await request.post()
    next_path = _local(str(form.get("next", "/")))
    if (wait_s := limiter.retry_after_s(client, now=now)) is not None:
        log.warning("http.signin_refused", client=client, retry_after_s=round(wait_s))
        message = f"Too many failed sign-ins: try again in {wait_s:.0f}s."
        page = signin_page(style=STYLE, message=message, next_path=next_path, enabled=True)
        return html_response(page, status=429, headers={"Retry-After": f"{wait_s:.0f}"})
    given = form.get("token")
    text = given if isinstance(given, str) else ""
    if not hmac.compare_digest(text.strip().encode(), token.encode()):
        limiter.failed(client, now=now)
        log.warning("http.signin_failed", client=client)
        message = "That is not the admin token."
        page = signin_page(style=STYLE, message=message, next_path=next_path, enabled=True)
        return html_response(page, status=401)
    limiter.succeeded(client)
    session = new_session(now=now)
    response = see_other(_with_flash(next_path, "signed_in"))
    response.set_cookie(
        COOKIE_NAME,
        cookie_value(session, key=session_key(token)),
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    log.info("http.signin", client=client)
    return response


async def _signout(request: web.Request) -> web.Response:
    session, _ = await checked_form(request)
    request.app[SIGNED_OUT].add(session, now=request.app[CONTEXT].now())
    response = see_other("/?flash=signed_out")
    response.del_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    log.info("http.signout", client=request_client(request))
    return response


def _with_flash(path: str, code: str) -> str:
    """`path` with `flash=code` in its query, in place of any flash it had."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "flash"] + [("flash", code)]
    return urlunsplit(("", "", parts.path, urlencode(query), parts.fragment))
