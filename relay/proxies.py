"""The one proxy rule of the relay's HTTP clients (the Zaia API client and the sinks).

Invariants:
- A request goes through the proxy that HTTP_PROXY / HTTPS_PROXY (or their lower-case
  forms) name for its scheme, unless NO_PROXY exempts its host; with neither set, it
  goes direct. ALL_PROXY is not read.
- The clients look the proxy up once per origin (aiohttp's `trust_env` would look it
  up on every request, in a thread, and read ~/.netrc as well).
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit


def env_proxy(url: str) -> str | None:
    """The proxy from the environment for `url`, or None to connect directly."""
    split = urlsplit(url)
    if urllib.request.proxy_bypass(split.hostname or ""):
        return None
    return urllib.request.getproxies().get(split.scheme)


__all__ = ["env_proxy"]
