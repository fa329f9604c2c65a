"""The one secret scrubber: every encoding of a secret goes, one placeholder, nothing else."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote

import pytest

from relay.scrub import DERIVED_MIN_LENGTH, REDACTED, SecretScrubber

URL = "https://hooks.example.com/services/T0/B0/s3cr3t-PATH?token=q-tok-789"


@pytest.mark.parametrize(
    "written",
    [
        URL,
        quote(URL, safe=""),
        quote(URL, safe="/:"),
        html.escape(URL),
        json.dumps(URL)[1:-1],
    ],
)
def test_a_secret_is_scrubbed_in_each_obvious_encoding(written: str) -> None:
    scrubber = SecretScrubber.of([URL])
    assert scrubber.scrub_text(f"POST {written} failed") == f"POST {REDACTED} failed"
    assert scrubber.scrub(f"<{written}>".encode()) == f"<{REDACTED}>".encode()


def test_a_secret_inside_another_goes_whole() -> None:
    path = "/services/T0/B0/s3cr3t-PATH"
    scrubber = SecretScrubber.of([path, URL])
    assert scrubber.scrub_text(f"a {URL} b {path} c") == f"a {REDACTED} b {REDACTED} c"


def test_short_secrets_are_left_unless_asked() -> None:
    assert SecretScrubber.of(["abc"]).scrub_text("abc") == "abc"
    assert SecretScrubber.of(["abc"], min_length=1).scrub_text("x abc") == f"x {REDACTED}"
    assert SecretScrubber.of(["", "abc"], min_length=0).needles == ("abc",)


def test_clean_text_comes_back_as_the_same_object() -> None:
    scrubber = SecretScrubber.of([URL])
    text, body = "nothing to see here", b"nor here"
    assert scrubber.scrub_text(text) is text
    assert scrubber.scrub(body) is body
    assert not SecretScrubber.of([])
    assert scrubber.finds(f"x{URL}x")
    assert not scrubber.finds("x")


def test_non_ascii_secrets_in_bytes_and_json() -> None:
    secret = "pässwört-123"
    scrubber = SecretScrubber.of([secret])
    assert scrubber.scrub(json.dumps({"k": secret}).encode()) == f'{{"k": "{REDACTED}"}}'.encode()
    assert scrubber.scrub(f"k={secret}".encode()) == f"k={REDACTED}".encode()


# --- the values a secret is sent as ----------------------------------------------------

TOKEN = "tok+9f8e/7d6c5b4a="
BASIC = "Basic " + base64.b64encode(b"relay-bot:p@ss/w0rd!").decode()
USERINFO_URL = "https://relay-bot:p%40ss%2Fw0rd%21@hooks.example.com/zaia"


@pytest.mark.parametrize(
    ("configured", "sent"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"Bearer {TOKEN}", quote(TOKEN, safe="")),
        (f"bearer {TOKEN}", TOKEN),
        (BASIC, BASIC.removeprefix("Basic ")),
        (BASIC, "relay-bot:p@ss/w0rd!"),
        (BASIC, "p@ss/w0rd!"),
        (USERINFO_URL, base64.b64encode(b"relay-bot:p@ss/w0rd!").decode()),
        (USERINFO_URL, base64.b64encode(b"relay-bot:p@ss/w0rd!").decode().rstrip("=")),
        (USERINFO_URL, "relay-bot:p@ss/w0rd!"),
        (USERINFO_URL, "relay-bot:p%40ss%2Fw0rd%21"),
        (USERINFO_URL, "p@ss/w0rd!"),
        (USERINFO_URL, quote("p@ss/w0rd!", safe="")),
        ("sec%2Fret-value", "sec/ret-value"),
        ("https://ghp_t0ken1234@git.example/x", "ghp_t0ken1234"),
        ("https://ghp_t0ken1234@git.example/x", base64.b64encode(b"ghp_t0ken1234:").decode()),
    ],
)
def test_what_a_secret_is_sent_as_is_scrubbed_too(configured: str, sent: str) -> None:
    scrubber = SecretScrubber.of([configured], min_length=1)
    assert scrubber.scrub_text(f"echo: {sent}.") == f"echo: {REDACTED}."


def test_derived_values_under_the_floor_are_left() -> None:
    # "ab12" and "pw" would blank ordinary text; the whole configured value still goes.
    scrubber = SecretScrubber.of(["Bearer ab12", "https://u:pw@h.example/x"], min_length=1)
    assert scrubber.scrub_text("ab12 u:pw pw") == "ab12 u:pw pw"
    assert scrubber.scrub_text("Bearer ab12") == REDACTED
    assert DERIVED_MIN_LENGTH == 6
    assert SecretScrubber.of(["Bearer abc123"], min_length=1).scrub_text("abc123") == REDACTED


def test_an_excerpt_is_scrubbed_before_it_is_cut() -> None:
    secret = "s3cr3t-" + "x" * 20
    scrubber = SecretScrubber.of([secret])
    # Folding the spaces brings the secret, which straddles any early cut, into range.
    text = "a" + " " * 500 + secret + " tail"
    assert scrubber.excerpt(text, limit=15) == f"a {REDACTED} tail"[:15]
    # Cut inside the secret: neither the secret nor its start is left.
    assert scrubber.excerpt(f"x {secret}", limit=8) == f"x {REDACTED}"[:8]
    assert scrubber.excerpt("one\n\ttwo   three", limit=100) == "one two three"
