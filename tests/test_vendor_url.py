"""The one rule for vendors' URLs (`check_vendor_url`): https, except plain http to a
loopback host, where local bridges and tests listen. Messages never repeat the URL."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.settings._base import check_vendor_url

_HTTPS_ONLY = "should be https://: plain http:// is only for loopback hosts"
_NOT_A_URL = "should be an https:// URL with a host"


@pytest.mark.parametrize(
    "url",
    [
        "https://events.pagerduty.com/v2/enqueue",
        "HTTPS://Example.COM/path?q=1",
        "https://user:pa55@example.com/hook",
        "https://[2001:db8::1]:8443/x",
        "http://127.0.0.1:8080/hook",
        "http://127.255.255.254/",
        "http://localhost:9/x",
        "http://LocalHost/x",
        "http://[::1]:8080/x",
        "  https://example.com/padded  ",
    ],
)
def test_accepted(url: str) -> None:
    assert check_vendor_url(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/hook", _HTTPS_ONLY),
        ("http://10.0.0.5/hook", _HTTPS_ONLY),
        ("http://128.0.0.1/", _HTTPS_ONLY),  # just outside 127.0.0.0/8
        ("http://127.0.0.1.example.com/", _HTTPS_ONLY),  # a name, not the address
        ("http://localhost.example.com/", _HTTPS_ONLY),
        ("http://[::2]/", _HTTPS_ONLY),
        ("http://[::ffff:127.0.0.1]/", _HTTPS_ONLY),  # IPv4-mapped: not spelled as loopback
        ("http://0.0.0.0/", _HTTPS_ONLY),
        ("ftp://example.com/file", _NOT_A_URL),
        ("example.com/hook", _NOT_A_URL),
        ("https://", _NOT_A_URL),
        ("https://[::1/", _NOT_A_URL),  # an unclosed bracket
        ("", _NOT_A_URL),
    ],
)
def test_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^should be") as caught:
        check_vendor_url(url)
    assert str(caught.value).startswith(message)


def test_the_message_never_repeats_the_url() -> None:
    secret_url = "http://hooks.example.com/services/T0/B0/s3cr3t-t0ken"
    with pytest.raises(ValueError, match="only for loopback hosts") as caught:
        check_vendor_url(secret_url)
    assert "s3cr3t-t0ken" not in str(caught.value)
    assert "hooks.example.com" not in str(caught.value)


@given(st.ip_addresses(v=4), st.integers(min_value=1, max_value=65535))
def test_plain_http_to_an_ipv4_address_is_accepted_only_in_127_0_0_0_8(
    address: ipaddress.IPv4Address, port: int
) -> None:
    url = f"http://{address}:{port}/hook"
    if address in ipaddress.IPv4Network("127.0.0.0/8"):
        check_vendor_url(url)
    else:
        with pytest.raises(ValueError, match="only for loopback hosts"):
            check_vendor_url(url)
    check_vendor_url(f"https://{address}:{port}/hook")  # https: any host
