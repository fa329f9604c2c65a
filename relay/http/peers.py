"""Who sent a request: the `Host` it names and the client behind any trusted proxies.
Pure: no I/O.

Invariants:
- `split_host` is the one parser of `Host` values (and of `server.allowed_hosts`
  entries and `Origin` netlocs): lower case in, `(name, port or None)` out, an IPv6
  literal kept in its brackets.
- `client_address` believes `X-Forwarded-For` only when the peer that connected is in
  `trusted` (`server.trusted_proxies`): it walks the list from the right (the entry
  the nearest proxy appended) past trusted proxies, and the first address that is not
  one is the client. Entries to the left of it are whatever the client sent and are
  never believed. A malformed entry stops the walk at the last trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

__all__ = ["Network", "client_address", "same_host", "split_host"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_DEFAULT_PORTS = ("80", "443")


def split_host(host: str) -> tuple[str, str | None]:
    """`relay.internal:8080` -> (`relay.internal`, `8080`); `[::1]` -> (`[::1]`, None)."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 literal: [::1] or [::1]:8080
        name, _, rest = host.partition("]")
        return name + "]", rest.removeprefix(":") or None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, port
    return host, None


def same_host(a: str, b: str) -> bool:
    """Whether two hosts name the same origin host, a default port (80, 443) or none
    being the same."""
    (name_a, port_a), (name_b, port_b) = split_host(a), split_host(b)
    port_a = None if port_a in _DEFAULT_PORTS else port_a
    port_b = None if port_b in _DEFAULT_PORTS else port_b
    return name_a == name_b and port_a == port_b


def _in(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(
    peer: str | None, *, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str:
    """The client's address (see the module invariants); `forwarded_for`: every
    `X-Forwarded-For` header of the request, in order."""
    client = peer or "unknown"
    if not trusted or not _in(client, trusted):
        return client
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client  # garbage: the last proxy we trust is all we know
        client = hop
        if not _in(hop, trusted):
            return client
    return client
