"""Signing in to the status page: the session cookie, the CSRF token, the cross-site
check and the limit on failed sign-ins. Pure: no I/O; times are passed in.

A session cookie is `EXPIRY.NONCE.SIGNATURE`: EXPIRY in Unix seconds, NONCE 16 random
bytes (base64url), SIGNATURE HMAC-SHA256 over `v1.EXPIRY.NONCE` with a key derived
from the admin token (`session_key`).

Invariants:
- The cookie never holds the admin token nor anything from which it can be computed;
  the key is HMAC(admin token, a fixed label), so changing `server.admin_token` (a
  reload, a restart) signs everyone out, and replicas sharing the token share sessions.
- A cookie is a session only when its signature matches (`hmac.compare_digest`), its
  expiry is in the future and at most `SESSION_LIFETIME` ahead, and its nonce was not
  signed out (`SignedOut`, in this process).
- The CSRF token of a session is HMAC(key, `csrf.NONCE`): a page's forms carry it, and a
  POST is accepted only with the token of the session its cookie names.
- `cross_site_reason` refuses a request that says it comes from another site
  (`Sec-Fetch-Site` other than same-origin or none) or another origin (`Origin` whose
  host is not the `Host` the request was sent to, or `null`); a request without either
  header (an old browser, curl) passes to the session and CSRF checks.
- `SignInLimiter` allows `MAX_FAILURES` failed sign-ins per client within `WINDOW`;
  after that the client is refused without its attempt being checked until the oldest
  failure leaves the window. A client is an address (`relay.http.peers.client_address`:
  behind `server.trusted_proxies`, the address the proxy saw), so a guesser locks out
  only itself. Past `MAX_TOTAL_FAILURES` failures of all clients within `WINDOW` (a
  guess spread over many addresses), every client that failed within the window is
  refused too, while a client without a recent failure still gets its attempt
  checked: a flood never refuses the operator's first, correct token, and guessing
  slows to one try per address per window (the token has >= 16 characters: guessing
  is hopeless anyway; a lock-out is the real risk). It remembers at most
  `MAX_CLIENTS` clients (the oldest forgotten first), so a flood of addresses cannot
  grow it without bound.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from relay.http.peers import same_host

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "MAX_FAILURES",
    "MAX_TOTAL_FAILURES",
    "SESSION_LIFETIME",
    "WINDOW",
    "Session",
    "SignInLimiter",
    "SignedOut",
    "cookie_value",
    "cross_site_reason",
    "csrf_ok",
    "csrf_token",
    "new_session",
    "read_session",
    "session_key",
]

COOKIE_NAME = "relay_session"
CSRF_FIELD = "csrf"
SESSION_LIFETIME = timedelta(hours=12)
MAX_FAILURES = 10
MAX_TOTAL_FAILURES = 100
WINDOW = timedelta(minutes=5)
MAX_CLIENTS = 10_000
_LABEL = b"zaia-relay status page session v1"
_SAME_SITE = frozenset({"same-origin", "none"})


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires_at: datetime


def session_key(admin_token: str) -> bytes:
    """The key sessions are signed with: derived from the admin token, never it."""
    return hmac.new(admin_token.encode(), _LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, text: str) -> str:
    return _b64(hmac.new(key, text.encode(), hashlib.sha256).digest())


def new_session(*, now: datetime, nonce: str | None = None) -> Session:
    """A session from `now` for `SESSION_LIFETIME` (`nonce`: given in tests)."""
    expires = int((now + SESSION_LIFETIME).timestamp())
    return Session(
        nonce=nonce or _b64(secrets.token_bytes(16)),
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


def cookie_value(session: Session, *, key: bytes) -> str:
    expiry = int(session.expires_at.timestamp())
    return f"{expiry}.{session.nonce}.{_mac(key, f'v1.{expiry}.{session.nonce}')}"


def read_session(
    value: str | None, *, key: bytes, now: datetime, signed_out: SignedOut | None = None
) -> Session | None:
    """The session a cookie value names, or None (unsigned, tampered, expired, signed out)."""
    if not value or len(value) > 200:
        return None
    expiry_text, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if not expiry_text.isdigit() or not nonce or not signature:
        return None
    expected = _mac(key, f"v1.{expiry_text}.{nonce}")
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        expires_at = datetime.fromtimestamp(int(expiry_text), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    if not now < expires_at <= now + SESSION_LIFETIME:
        return None
    if signed_out is not None and signed_out.contains(nonce, now=now):
        return None
    return Session(nonce=nonce, expires_at=expires_at)


def csrf_token(session: Session, *, key: bytes) -> str:
    return _mac(key, f"csrf.{session.nonce}")


def csrf_ok(session: Session, given: str | None, *, key: bytes) -> bool:
    expected = csrf_token(session, key=key)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def cross_site_reason(headers: Mapping[str, str]) -> str | None:
    """Why a POST looks cross-site, or None (see the module invariants)."""
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME_SITE:
        return "Sec-Fetch-Site says the form was posted from another site"
    origin = headers.get("Origin")
    if origin is None:
        return None
    try:
        origin_host = urlsplit(origin.strip()).netloc.lower()
    except ValueError:
        origin_host = ""
    if not origin_host or not same_host(origin_host, headers.get("Host", "")):
        return "Origin is not this relay"
    return None


class SignedOut:
    """Nonces signed out in this process, kept until their cookie would expire anyway."""

    def __init__(self, *, capacity: int = MAX_CLIENTS) -> None:
        self._until: OrderedDict[str, datetime] = OrderedDict()
        self._capacity = capacity

    def add(self, session: Session, *, now: datetime) -> None:
        self._prune(now)
        self._until[session.nonce] = session.expires_at
        while len(self._until) > self._capacity:
            self._until.popitem(last=False)

    def contains(self, nonce: str, *, now: datetime) -> bool:
        until = self._until.get(nonce)
        return until is not None and until > now

    def _prune(self, now: datetime) -> None:
        for nonce in [n for n, until in self._until.items() if until <= now]:
            del self._until[nonce]


class SignInLimiter:
    """Failed sign-ins per client (see the module invariants)."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        max_total: int = MAX_TOTAL_FAILURES,
        window: timedelta = WINDOW,
    ) -> None:
        self._max = max_failures
        self._max_total = max_total
        self._window = window
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()
        # The latest failures of all clients: `max_total` of them at most are needed.
        self._all: deque[datetime] = deque(maxlen=max_total)

    def retry_after_s(self, client: str, *, now: datetime) -> float | None:
        """Seconds until `client` may try again, or None when it may now."""
        failures = self._recent(client, now=now)
        while self._all and self._all[0] <= now - self._window:
            self._all.popleft()
        flooded = len(self._all) >= self._max_total
        if len(failures) < (1 if flooded else self._max):
            return None
        return max((failures[0] + self._window - now).total_seconds(), 1.0)

    def failed(self, client: str, *, now: datetime) -> None:
        failures = self._recent(client, now=now)
        failures.append(now)
        self._all.append(now)
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > MAX_CLIENTS:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str, *, now: datetime) -> deque[datetime]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures
