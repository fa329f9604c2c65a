"""The one proxy rule of the relay's HTTP clients (the Zaia API client and the sinks).

Invariants:
- A request goes through the proxy that HTTP_PROXY / HTTPS_PROXY (or their lower-case
  forms) name for its scheme, unless NO_PROXY exempts its host; with neither set, it
  goes direct. ALL_PROXY is not read.
- The clients look the proxy up once per origin (aiohttp's `trust_env` would look it
  up on every request, in a thread, and read ~/.netrc as well).
- A proxy's `user:password@` is sent as a `Proxy-Authorization` header (`Proxy.headers`),
  apart from its URL:
  aiohttp quotes the proxy URL in its errors, which end up in logs and stored errors.
  `proxy_secrets()` names those credentials for the scrubbers, in case one is quoted
  anyway.
"""

from __future__ import annotations

import base64
import urllib.request
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit


class Proxy(NamedTuple):
    url: str  # without userinfo
    headers: dict[str, str] | None  # Proxy-Authorization, when the URL had credentials


def env_proxy(url: str) -> Proxy | None:
    """The proxy from the environment for `url`, or None to connect directly."""
    split = urlsplit(url)
    if urllib.request.proxy_bypass(split.hostname or ""):
        return None
    proxy = urllib.request.getproxies().get(split.scheme)
    if proxy is None:
        return None
    parts = urlsplit(proxy)
    if parts.username is None:
        return Proxy(proxy, None)
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return Proxy(bare, {"Proxy-Authorization": _basic(parts.username, parts.password)})


def request_options(proxy: Proxy | None) -> dict[str, Any]:
    """The keyword arguments of an aiohttp request going through `proxy` (none: direct)."""
    return {} if proxy is None else {"proxy": proxy.url, "proxy_headers": proxy.headers}


def proxy_secrets() -> list[str]:
    """The proxy URLs of the environment that carry credentials, their passwords and
    the `Proxy-Authorization` values made of them."""
    found: list[str] = []
    for proxy in urllib.request.getproxies().values():
        parts = urlsplit(proxy)
        if parts.username is not None:
            found += [proxy, _basic(parts.username, parts.password)]
            if parts.password:
                found.append(unquote(parts.password))
    return found


def _basic(username: str, password: str | None) -> str:
    pair = f"{unquote(username)}:{unquote(password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


__all__ = ["Proxy", "env_proxy", "proxy_secrets", "request_options"]
