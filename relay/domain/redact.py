"""Redaction and bounding of text taken from executions (error outputs, opted-in inputs).

Execution inputs and outputs can hold personal data and secrets; whatever an alert
shows from them goes through a `Redactor` first.

Invariants:
- `excerpt(text)` is never longer than `excerpt_chars` (ellipsis included) and contains
  no match of any pattern: text is redacted *before* it is cut, so a cut can never leave
  the visible half of a secret that no longer matches its pattern.
- Very large texts cost bounded work: only a prefix a little longer than the excerpt
  (by `_SCAN_MARGIN_CHARS`, more than any pattern's minimum match) is scanned.
- A pattern with a group named `secret` replaces only that group, keeping context
  such as `Bearer ` or `password=`; other patterns replace the whole match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from relay.settings import AlertsSettings

# What a redaction pattern leaves of personal data in an excerpt (not the secret
# placeholder of `relay.scrub`: this one marks data the operator asked to hide).
PII_PLACEHOLDER = "[REDACTED]"
ELLIPSIS = "…"
DEFAULT_EXCERPT_CHARS = 500
# How much text beyond the excerpt is scanned, so that a secret starting inside the
# excerpt still matches its whole pattern before the text is cut.
_SCAN_MARGIN_CHARS = 2048

_KEY_NAMES = (
    r"password|passwd|pwd|secret|client[_-]?secret|token|access[_-]?token|refresh[_-]?token"
    r"|api[_-]?key|apikey|x-api-key|private[_-]?key|session[_-]?id"
)

DEFAULT_PATTERNS: tuple[str, ...] = (
    # Credentials in URLs: scheme://user:password@host.
    r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]+:(?P<secret>[^\s/@]+)@",
    # Authorization headers, whatever their scheme, and bearer tokens anywhere.
    r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?"
    r"(?P<secret>(?:(?:bearer|basic|token|digest)\s+)?[^\s\"',;}]+)",
    r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    # key=value in query strings, forms and JSON: password=..., "api_key": "...".
    rf"(?i)(?:\b|_)(?:{_KEY_NAMES})[\"']?\s*[=:]\s*[\"']?(?P<secret>[^\s&\"',;}}]{{3,}})",
    # JSON Web Tokens.
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    # OpenAI / Anthropic style keys: sk-..., sk-proj-..., sk-ant-...
    r"\bsk-[A-Za-z0-9_-]{16,}",
    # Zaia keys, Stripe-like keys: zk_live_..., sk_test_..., pk_live_..., rk_live_...
    r"\b(?:zk|sk|pk|rk)_(?:live|test)_?[A-Za-z0-9_-]{8,}",
    # Slack tokens.
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    # AWS access key ids.
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    # GitHub tokens.
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bgithub_pat_[A-Za-z0-9_]{22,}",
    # Google API keys.
    r"\bAIza[0-9A-Za-z_-]{35}",
    # E-mail addresses.
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    # Long hex keys (UUIDs have dashes and are kept: they are ids, not secrets).
    r"\b[0-9a-fA-F]{32,}\b",
    # Long base64 / base64url keys: a run of 32+ key characters mixing digits, lower
    # and upper case letters (ordinary words and paths rarely do all three).
    r"(?<![A-Za-z0-9+/_-])(?=[A-Za-z0-9+/_-]*[0-9])(?=[A-Za-z0-9+/_-]*[a-z])"
    r"(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{32,}={0,2}",
)


class Redactor:
    """Replaces secrets and personal data in text, and bounds excerpts."""

    def __init__(
        self,
        *,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        excerpt_chars: int = DEFAULT_EXCERPT_CHARS,
    ) -> None:
        if excerpt_chars < 0:
            raise ValueError("excerpt_chars should not be negative")
        self._patterns = tuple(re.compile(pattern) for pattern in patterns)
        self.excerpt_chars = excerpt_chars

    @classmethod
    def from_settings(cls, alerts: AlertsSettings) -> Redactor:
        """The defaults plus the configured `alerts.redactions`, bounded to `excerpt_chars`."""
        return cls(
            patterns=(*DEFAULT_PATTERNS, *alerts.redactions),
            excerpt_chars=alerts.excerpt_chars,
        )

    def redact(self, text: str) -> str:
        """`text` with every match of every pattern replaced by `[REDACTED]`."""
        for pattern in self._patterns:
            text = pattern.sub(_replace, text)
        return text

    def excerpt(self, text: str) -> str:
        """Redacted, stripped and cut to `excerpt_chars` (ending with an ellipsis if cut)."""
        limit = self.excerpt_chars
        if limit == 0:
            return ""
        scanned = text[: limit + _SCAN_MARGIN_CHARS]
        cut = len(scanned) < len(text)
        redacted = self.redact(scanned).strip()
        if len(redacted) <= limit and not cut:
            return redacted
        if len(redacted) < limit:  # redaction shrank a text that was cut anyway
            return redacted + ELLIPSIS
        return redacted[: limit - 1].rstrip() + ELLIPSIS


def bound(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last one an ellipsis when cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def _replace(match: re.Match[str]) -> str:
    if "secret" in match.re.groupindex and match.group("secret") is not None:
        start, end = match.span("secret")
        whole_start = match.start()
        whole = match.group(0)
        return whole[: start - whole_start] + PII_PLACEHOLDER + whole[end - whole_start :]
    return PII_PLACEHOLDER
