"""Table tests of `relay.domain.redact`: secrets and personal data never reach an alert."""

from __future__ import annotations

import pytest

from relay.domain.redact import ELLIPSIS, Redactor, bound
from relay.domain.redact import PII_PLACEHOLDER as REDACTED
from relay.settings import AlertsSettings

REDACTOR = Redactor()


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("contact bob.smith+tag@example.co.uk now", "bob.smith+tag@example.co.uk", "contact"),
        ("user ana@empresa.com.br failed", "ana@empresa.com.br", "failed"),
        ("Authorization: Bearer abc.DEF-ghi_12345", "abc.DEF-ghi_12345", "Authorization"),
        ('{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}', "dXNlcjpwYXNzd29yZA==", "{"),
        ("sent bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJhbGci", "sent"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "eyJzdWIi", "here"),
        ("key sk-abcdefghijklmnopqrstuvwxyz0123 used", "sk-abcdefghij", "used"),
        ("key sk-proj-Abc123Def456Ghi789Jkl012 used", "sk-proj-Abc123", "used"),
        ("key sk-ant-api03-abcdefghijklmnop used", "sk-ant-api03", "used"),
        ("zaia zk_live_8f7a6b5c4d3e2f1a0b9c rejected", "zk_live_8f7a6b5c", "rejected"),
        ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "stripe"),
        ("slack xoxb-1234567890-abcdefghijklmno", "xoxb-1234567890", "slack"),
        ("slack xoxp-1234567890-abcdefghijklmno", "xoxp-1234567890", "slack"),
        ("aws AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE", "denied"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdefghij", "gh"),
        ("gh github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "github_pat_11ABC", "gh"),
        ("google AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA-12345", "google"),
        ("hex 0123456789abcdef0123456789abcdef done", "0123456789abcdef0123456789abcdef", "done"),
        ("b64 QWxhZGRpbjpvcGVuIHNlc2FtZQ0123456789abXYZ== end", "QWxhZGRpbjpv", "end"),
        ("GET /cb?user=bob&password=hunter22&x=1", "hunter22", "user=bob"),
        ("GET /cb?api_key=abc123xyz&page=2", "abc123xyz", "page=2"),
        ('{"api_key": "abc123xyz", "ok": true}', "abc123xyz", '"ok": true'),
        ("client_secret=s3cr3tvalue;", "s3cr3tvalue", "client_secret="),
        ("postgres://admin:s3cr3t@db:5432/app", "s3cr3t", "postgres://admin:"),
    ],
)
def test_default_patterns_redact_secrets(text: str, secret: str, kept: str) -> None:
    redacted = REDACTOR.redact(text)
    assert secret not in redacted
    assert REDACTED in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "execution 008a05a6-c464-4159-8324-c9859b810e76 failed",
        "Timeout calling the ERP after 30s (attempt 3 of 3)",
        "GET /api/v1/executions/nestings returned 502 Bad Gateway",
        "Invalid token provided",
        "The order #48213 is late; customer asked twice",
        "KeyError: 'customer_reference_number_for_the_invoice'",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert REDACTOR.redact(text) == text


def test_excerpt_of_short_text_is_the_redacted_text() -> None:
    assert REDACTOR.excerpt("  boom for ana@example.com \n") == f"boom for {REDACTED}"


def test_a_50kb_output_is_bounded_to_the_default_500_chars() -> None:
    text = ("lorem ipsum dolor sit amet " * 2000)[:50_000]
    excerpt = REDACTOR.excerpt(text)
    assert len(excerpt) == 500
    assert excerpt.endswith(ELLIPSIS)


@pytest.mark.parametrize("offset", [0, 250, 480, 495, 499, 500, 520])
def test_a_secret_across_the_cut_never_leaks_a_part(offset: int) -> None:
    secret = "sk-" + "A1b2C3d4E5f6G7h8I9j0" * 3
    text = "x " * (offset // 2) + secret + " tail" * 10_000
    excerpt = REDACTOR.excerpt(text)
    assert len(excerpt) <= 500
    assert "A1b2C3d4" not in excerpt


def test_secrets_everywhere_in_a_large_payload_are_redacted() -> None:
    chunk = "user ana@example.com key sk-abcdefghijklmnopqrstuvwxyz0123 token=s3cr3t& "
    excerpt = Redactor(excerpt_chars=3000).excerpt(chunk * 1000)
    assert "ana@example.com" not in excerpt
    assert "sk-abcdefghij" not in excerpt
    assert "s3cr3t" not in excerpt
    assert len(excerpt) == 3000


@pytest.mark.parametrize(
    ("chars", "text", "expected"),
    [
        (10, "short", "short"),
        (10, "exactly 10", "exactly 10"),
        (10, "eleven char", "eleven ch" + ELLIPSIS),
        (1, "ab", ELLIPSIS),
        (0, "anything", ""),
    ],
)
def test_excerpt_chars_is_configurable(chars: int, text: str, expected: str) -> None:
    assert Redactor(excerpt_chars=chars).excerpt(text) == expected


def test_redaction_that_shrinks_a_cut_text_still_marks_the_cut() -> None:
    # 20 chars fit, but the text is longer than the scanned prefix: it was cut.
    redactor = Redactor(excerpt_chars=40)
    text = "k " + "0123456789abcdef" * 200 + " end"
    excerpt = redactor.excerpt(text)
    assert excerpt.endswith(ELLIPSIS)
    assert len(excerpt) <= 40


def test_negative_excerpt_chars_is_refused() -> None:
    with pytest.raises(ValueError, match="excerpt_chars"):
        Redactor(excerpt_chars=-1)


def test_bound() -> None:
    assert bound("abc", 3) == "abc"
    assert bound("abcd", 3) == "ab" + ELLIPSIS
    assert bound("abcd", 0) == ""


def test_configured_redactions_add_to_the_defaults() -> None:
    alerts = AlertsSettings.model_validate(
        {"excerpt_chars": 100, "redactions": [r"CUST-\d{6}", r"pin=(?P<secret>\d+)"]}
    )
    redactor = Redactor.from_settings(alerts)
    text = "customer CUST-123456 pin=4321 mail ana@example.com"
    assert redactor.redact(text) == f"customer {REDACTED} pin={REDACTED} mail {REDACTED}"
    assert redactor.excerpt_chars == 100


def test_custom_patterns_replace_the_defaults_when_given_directly() -> None:
    redactor = Redactor(patterns=[r"\d+"])
    assert redactor.redact("ana@example.com 42") == f"ana@example.com {REDACTED}"
