"""The one secret scrubber: known secret values out of any text the relay writes.

Logs, HTTP responses, configuration problems, sink errors and Zaia API client errors
all scrub through `SecretScrubber`, so a secret is replaced the same way, by the same
placeholder, wherever it would have leaked.

Invariants:
- Every occurrence of a secret becomes `REDACTED`, and so does each of its obvious
  encodings (`_encodings`: percent-encoded as in a URL, escaped for JSON or HTML),
  because text is often written after one of them.
- Longer needles are replaced first, so a secret that contains another (a webhook URL
  and its path) is replaced whole, not left in pieces around a placeholder.
- Secrets shorter than `min_length` are not scrubbed: replacing a few common
  characters would corrupt ordinary text, and such a value protects little anyway.
- Text with no secret in it is returned as it came (the very same object).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from typing import ClassVar, Protocol
from urllib.parse import quote

REDACTED = "[redacted]"


class HasSecretValues(Protocol):
    """A configuration that can list its secrets (`relay.settings.Settings` can)."""

    def secret_values(self) -> Sequence[str]: ...


def _encodings(secret: str) -> set[str]:
    """`secret` as written verbatim and as its obvious encodings would write it."""
    return {
        secret,
        quote(secret, safe=""),  # a whole value percent-encoded (a query parameter)
        quote(secret, safe="/:"),  # a URL percent-encoded but for its separators
        html.escape(secret, quote=True),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


class SecretScrubber:
    """Replaces known secret values (see the module invariants) in text or bytes."""

    # The default for text that is not the relay's own (response bodies, receivers'
    # answers); callers whose text is short-lived and their own may go lower.
    MIN_LENGTH: ClassVar[int] = 6

    __slots__ = ("_bytes_pattern", "_text_pattern", "needles")

    def __init__(self, needles: Iterable[str] = ()) -> None:
        # Longest first: regex alternation takes the first alternative that matches.
        self.needles = tuple(sorted(set(needles), key=lambda n: (-len(n), n)))
        alternatives = "|".join(map(re.escape, self.needles))
        self._text_pattern = re.compile(alternatives) if self.needles else None
        self._bytes_pattern = re.compile(alternatives.encode()) if self.needles else None

    @classmethod
    def of(cls, secrets: Iterable[str], *, min_length: int = MIN_LENGTH) -> SecretScrubber:
        """A scrubber for `secrets` (empty ones and those under `min_length` ignored)."""
        needles: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= min_length:
                needles |= _encodings(secret)
        return cls(needles)

    @classmethod
    def from_settings(
        cls, settings: HasSecretValues, *, min_length: int = MIN_LENGTH
    ) -> SecretScrubber:
        """A scrubber for every secret of a configuration."""
        return cls.of(settings.secret_values(), min_length=min_length)

    def __bool__(self) -> bool:
        """Whether there is anything to scrub at all."""
        return bool(self.needles)

    def finds(self, text: str) -> bool:
        """Whether `text` holds a secret."""
        return self._text_pattern is not None and self._text_pattern.search(text) is not None

    def scrub_text(self, text: str) -> str:
        if self._text_pattern is None:
            return text
        scrubbed, count = self._text_pattern.subn(REDACTED, text)
        return scrubbed if count else text

    def scrub(self, body: bytes) -> bytes:
        """`scrub_text` for an encoded (UTF-8) body."""
        if self._bytes_pattern is None:
            return body
        scrubbed, count = self._bytes_pattern.subn(REDACTED.encode(), body)
        return scrubbed if count else body


__all__ = ["REDACTED", "HasSecretValues", "SecretScrubber"]
