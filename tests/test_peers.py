"""`relay.http.peers`: the one parser of Host values, and the client behind trusted
proxies (only a trusted peer's X-Forwarded-For is believed, from the right)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.http.peers import Network, client_address, same_host, split_host

PROXIES: tuple[Network, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("fd00::/8"),
)


@pytest.mark.parametrize(
    ("host", "split"),
    [
        ("relay.internal", ("relay.internal", None)),
        ("Relay.Internal:8080", ("relay.internal", "8080")),
        ("10.0.0.7:80", ("10.0.0.7", "80")),
        ("[::1]", ("[::1]", None)),
        ("[::1]:8080", ("[::1]", "8080")),
        (" relay: ", ("relay:", None)),
        ("", ("", None)),
    ],
)
def test_split_host(host: str, split: tuple[str, str | None]) -> None:
    assert split_host(host) == split


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("relay", "relay", True),
        ("relay:443", "relay", True),
        ("relay:80", "RELAY", True),
        ("relay:8080", "relay", False),
        ("relay:8080", "relay:8080", True),
        ("[::1]:443", "[::1]", True),
        ("other", "relay", False),
        ("", "relay", False),
    ],
)
def test_same_host(a: str, b: str, same: bool) -> None:
    assert same_host(a, b) == same


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("192.0.2.1", ["198.51.100.7"], "192.0.2.1"),  # peer not trusted: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # trusted, no header
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        ("10.0.0.2", ["203.0.113.9, 198.51.100.7"], "198.51.100.7"),  # left part: spoofable
        ("10.0.0.2", ["198.51.100.7, 10.0.0.3"], "198.51.100.7"),  # two proxies
        ("10.0.0.2", ["198.51.100.7", "10.0.0.3"], "198.51.100.7"),  # two headers
        ("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4"),  # all trusted: the farthest
        ("10.0.0.2", ["198.51.100.7, junk"], "10.0.0.2"),  # garbage: the last proxy
        ("fd00::5", ["2001:db8::1"], "2001:db8::1"),
        (None, ["198.51.100.7"], "unknown"),
    ],
)
def test_client_address(peer: str | None, forwarded: list[str], client: str) -> None:
    assert client_address(peer, forwarded_for=forwarded, trusted=PROXIES) == client


@given(st.lists(st.ip_addresses(v=4).map(str), max_size=5))
def test_without_trusted_proxies_the_peer_is_the_client(hops: list[str]) -> None:
    header = [", ".join(hops)] if hops else []
    assert client_address("10.0.0.2", forwarded_for=header, trusted=()) == "10.0.0.2"


@given(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=5), st.ip_addresses(v=4))
def test_a_client_never_chooses_the_address_the_proxy_appended(
    spoofed: list[str], real: ipaddress.IPv4Address
) -> None:
    header = ", ".join([*spoofed, str(real)])
    got = client_address("10.0.0.2", forwarded_for=[header], trusted=PROXIES)
    if real not in PROXIES[0]:
        assert got == str(real)
