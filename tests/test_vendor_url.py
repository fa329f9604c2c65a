"""`check_vendor_url`: a vendor's endpoint is https, or http to this machine only."""

from __future__ import annotations

import pytest

from relay.settings._base import check_vendor_url


@pytest.mark.parametrize(
    "url",
    [
        "https://events.pagerduty.com/v2/enqueue",
        "https://prod-00.westeurope.logic.azure.com:443/workflows/x?sig=abc",
        "http://127.0.0.1:8080/v2/enqueue",
        "http://127.10.0.3/bridge",
        "http://localhost:9000/",
        "http://[::1]:9000/",
        "https://[2001:db8::1]/x",
    ],
)
def test_accepted(url: str) -> None:
    check_vendor_url(url)


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://events.pagerduty.com/v2/enqueue", "loopback"),
        ("http://127.example.com/x", "loopback"),  # a name, not a loopback address
        ("http://10.0.0.7/x", "loopback"),
        ("ftp://events.pagerduty.com/", "https:// URL with a host"),
        ("https:///no-host", "https:// URL with a host"),
        ("http://[::1/x", "https:// URL with a host"),
        ("events.pagerduty.com/v2/enqueue", "https:// URL with a host"),
    ],
)
def test_refused_without_repeating_the_url(url: str, hint: str) -> None:
    with pytest.raises(ValueError, match="should be") as caught:
        check_vendor_url(url)
    assert hint in str(caught.value)
    assert url not in str(caught.value)
