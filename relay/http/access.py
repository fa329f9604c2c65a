"""Who may read: the `Host` check and the read token of the status page and `/api/v1`.

Invariants:
- `/healthz`, `/readyz` and `/metrics` stay open, to any Host and without a token:
  kubelet probes and Prometheus address the pod by its IP and send no token, and none
  of them carries alert contents.
- With `server.allowed_hosts`, every other request whose `Host` is not listed is refused
  with 421 before anything is read (a DNS-rebound page cannot read the relay); the
  answer never repeats the Host it got.
- With reads protected (`server.read_token` set, or `server.protect_reads`), a GET, HEAD
  or OPTIONS needs the read token or the admin token, either as `Authorization: Bearer
  TOKEN` or as the password of Basic auth (any user name): a browser asks for the latter
  itself, so the status page needs no token in its URL. Every accepted token is
  compared, each with `hmac.compare_digest`, whichever matches.
- A signed-in operator's session cookie (`relay.http.signin`) authorises reads too, and
  `/signin` shows its form without a token (the form reads nothing).
- Basic auth only ever authorises reads: a browser resends it unasked, so a change still
  needs `Bearer <admin token>` (`relay.http.common.check_admin`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from relay.http.common import CONTEXT, SAFE_METHODS, ApiError
from relay.http.peers import split_host
from relay.http.signin import SIGNIN_PATH, request_session

__all__ = ["OPEN_PATHS", "access_middleware", "host_allowed"]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """The Host check, then the read token (see the module invariants)."""
    if request.path in OPEN_PATHS:
        return await handler(request)
    server = request.app[CONTEXT].settings.server
    allowed = server.allowed_hosts
    if allowed and not host_allowed(request.headers.get("Host", ""), allowed):
        raise ApiError(
            421,
            "misdirected_request",
            "this relay does not answer to that Host header; add it to server.allowed_hosts",
        )
    if server.reads_protected and request.method in SAFE_METHODS and request.path != SIGNIN_PATH:
        tokens = [t.get_secret_value() for t in (server.read_token, server.admin_token) if t]
        if not _carries_one_of(request, tokens) and request_session(request) is None:
            raise ApiError(
                401,
                "unauthorized",
                "reading needs the read token (server.read_token, or the admin token): "
                "send 'Authorization: Bearer <token>', or log in with the token as the "
                "password (any user name)",
                headers={"WWW-Authenticate": 'Basic realm="zaia-relay", charset="UTF-8"'},
            )
    return await handler(request)


def host_allowed(header: str, allowed: Sequence[str]) -> bool:
    """Whether `Host: header` names an entry of `allowed` (lower case, as the settings
    keep them); an entry without a port allows the host on any port."""
    name, port = split_host(header.strip().lower())
    for entry in allowed:
        entry_name, entry_port = split_host(entry)
        if entry_name == name and entry_port in (None, port):
            return bool(name)
    return False


def _carries_one_of(request: web.Request, tokens: Sequence[str]) -> bool:
    given = _presented_token(request.headers.get("Authorization", ""))
    if given is None:
        return False
    matched = False
    for token in tokens:  # no early exit: the time does not tell which token matched
        matched |= hmac.compare_digest(given.encode(), token.encode())
    return matched


def _presented_token(header: str) -> str | None:
    """The token of a Bearer header, or the password of a Basic one."""
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep else None
