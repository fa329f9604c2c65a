"""The one secret scrubber: every encoding of a secret goes, one placeholder, nothing else."""

from __future__ import annotations

import html
import json
from urllib.parse import quote

import pytest

from relay.scrub import REDACTED, SecretScrubber

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
