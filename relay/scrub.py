"""The one secret scrubber: known secret values out of any text the relay writes.

Logs, HTTP responses, configuration problems, sink errors and Zaia API client errors
all scrub through `SecretScrubber`, so a secret is replaced the same way, by the same
placeholder, wherever it would have leaked.

Invariants:
- Every occurrence of a secret becomes `REDACTED`, and so does each of its obvious
  encodings (`_encodings`: percent-encoded as in a URL, escaped for JSON or HTML),
  because text is often written after one of them.
- So do the values a secret is sent as (`_variants`): the bare credentials of an
  `Authorization` value (`Bearer X`, `Basic X`: `X`; for Basic also the decoded
  `user:password` and the password), and for a URL with userinfo its `user:password`
  (as written and percent-decoded), the password, and the base64 of `user:password`
  that the HTTP client sends in its place. A receiver that echoes what it was sent
  echoes these.
- A derived value shorter than `DERIVED_MIN_LENGTH` (6) is not scrubbed, whatever the
  caller's `min_length`: 5 characters or fewer match ordinary words and numbers
  (`error`, `admin`, a port) in every message, while a 6-character fragment of a
  credential is rare in text by chance; a configured secret itself keeps the caller's
  minimum, as its whole value is specific enough.
- Longer needles are replaced first, so a secret that contains another (a webhook URL
  and its path) is replaced whole, not left in pieces around a placeholder.
- Secrets shorter than `min_length` are not scrubbed: replacing a few common
  characters would corrupt ordinary text, and such a value protects little anyway.
- Text with no secret in it is returned as it came (the very same object).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar, Protocol
from urllib.parse import quote, unquote, urlsplit

REDACTED = "[redacted]"
DERIVED_MIN_LENGTH = 6
# `<scheme> <credentials>`, the shape of an `Authorization` header value.
_AUTH_VALUE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9._-]*) +(?P<credentials>\S+)")


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


def _b64(text: str) -> Iterator[str]:
    """`text` in base64 as an HTTP client would send it (UTF-8, or Latin-1 as aiohttp)."""
    for encoding in ("utf-8", "latin-1"):
        try:
            encoded = base64.b64encode(text.encode(encoding)).decode("ascii")
        except UnicodeEncodeError:
            continue
        yield encoded
        yield encoded.rstrip("=")


def _user_password(pair: str) -> Iterator[str]:
    """`user:password` (as written and percent-decoded), the password alone (the user
    for a bare `TOKEN@`), and the base64 an HTTP client sends them as."""
    for form in {pair, unquote(pair)}:
        user, colon, password = form.partition(":")
        yield form
        yield password if colon else user
        yield from _b64(f"{user}:{password}")


def _auth_variants(secret: str) -> Iterator[str]:
    match = _AUTH_VALUE.fullmatch(secret.strip())
    if match is None:
        return
    credentials = match["credentials"]
    yield credentials
    if match["scheme"].lower() == "basic":
        try:
            pair = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return
        yield from _user_password(pair)


def _url_variants(secret: str) -> Iterator[str]:
    if "@" not in secret:
        return
    try:
        netloc = urlsplit(secret.strip()).netloc
    except ValueError:
        return
    userinfo, at, _ = netloc.rpartition("@")
    if at and userinfo:
        yield from _user_password(userinfo)


def _variants(secret: str) -> set[str]:
    """The values `secret` is also sent as (see the module invariants)."""
    found = {*_auth_variants(secret), *_url_variants(secret)}
    if "%" in secret:
        found.add(unquote(secret))
    found.discard(secret)
    return found


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
        derived_min = max(min_length, DERIVED_MIN_LENGTH)
        for secret in secrets:
            if secret and len(secret) >= min_length:
                needles |= _encodings(secret)
                for variant in _variants(secret):
                    if len(variant) >= derived_min:
                        needles |= _encodings(variant)
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

    def excerpt(self, text: str, *, limit: int) -> str:
        """The start of `text` on one line, at most `limit` characters, scrubbed, and
        encodable (`encodable`: a receiver's bytes decoded with `surrogateescape`).

        Scrubbed whole before it is cut, so a cut never leaves the start of a secret
        that the scrubber would no longer recognise; and again once whitespace is
        folded, in case folding joined a secret that spanned a line break."""
        folded = " ".join(self.scrub_text(encodable(text)).split())
        return self.scrub_text(folded)[:limit]

    def scrub(self, body: bytes) -> bytes:
        """`scrub_text` for an encoded (UTF-8) body."""
        if self._bytes_pattern is None:
            return body
        scrubbed, count = self._bytes_pattern.subn(REDACTED.encode(), body)
        return scrubbed if count else body


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encodable(text: str) -> str:
    """`text` with every lone surrogate (what `surrogateescape` makes of bytes that are
    not UTF-8, as aiosmtplib decodes replies) replaced by U+FFFD, so it encodes as
    UTF-8: into the store, a log line, a JSON answer."""
    return _LONE_SURROGATE.sub("\ufffd", text)


__all__ = ["DERIVED_MIN_LENGTH", "REDACTED", "HasSecretValues", "SecretScrubber", "encodable"]
