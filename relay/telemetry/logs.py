"""Logging: structlog events as JSON lines in production, readable lines in a terminal.

Invariants:
- Every configured secret is replaced by `***` wherever it occurs in an event: the
  message, field values and keys, nested dicts/lists/tuples/sets, the text of other
  objects (an exception carrying a URL), and rendered tracebacks. `SecretStr` values
  are always replaced, configured or not.
- Records from the standard library (`aiohttp`, `httpx`, ...) go through the same
  redaction and renderer, so a library logging a webhook URL does not leak it.
- Timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal, TextIO
from urllib.parse import quote

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from relay.durations import format_duration
from relay.settings import Settings, WebhookSinkSettings

REDACTED = "***"
LogFormat = Literal["auto", "json", "console"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}
# Libraries that log every request at INFO, URL included: quiet unless debugging.
_CHATTY_LOGGERS = ("httpx", "httpcore", "aiohttp.access")


class SecretRedactor:
    """A structlog processor replacing every occurrence of a secret with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if secret:
                # A URL or token may also be logged percent-encoded.
                variants |= {secret, quote(secret, safe=""), quote(secret, safe="/:")}
        ordered = sorted(variants, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {self.redact(key): self.redact(value) for key, value in event_dict.items()}

    def redact_text(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def redact(self, value: Any, *, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, SecretStr | SecretBytes):
            return REDACTED
        if value is None or isinstance(value, bool | int | float | datetime | date | timedelta):
            return value
        if depth > 20:  # a cycle or an absurdly deep structure: render it as text
            return self.redact_text(repr(value))
        if isinstance(value, Mapping):
            return {
                self.redact(k, depth=depth + 1): self.redact(v, depth=depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.redact(item, depth=depth + 1) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        if self._pattern is None:
            return value
        # Anything else is rendered by its text (repr in JSON and console output).
        text = repr(value)
        if self._pattern.search(text) or self._pattern.search(str(value)):
            return self.redact_text(text)
        return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return repr(value)


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(_LEVELS)}") from None


class _RelayHandler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installs, so reconfiguring replaces it."""


def configure_logging(
    *,
    level: str | int = "info",
    fmt: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Route structlog and the standard library's logging to `stream` (default stderr).

    `fmt="auto"` writes JSON lines unless `stream` is a terminal. May be called again
    (tests, or once settings are loaded) and replaces the previous configuration.
    """
    out = stream if stream is not None else sys.stderr
    threshold = _level_number(level)
    as_json = fmt == "json" or (fmt == "auto" and not _isatty(out))
    redactor = SecretRedactor(secrets)
    renderer: Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer(default=_json_default)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(out))

    # Exceptions are rendered to text before redaction so tracebacks are redacted too.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, redactor, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )

    handler = _RelayHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redactor,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RelayHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING))


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in `settings`: API keys, webhook URLs, tokens, signing secrets,
    header values, the admin token and a database password in the store URL."""
    found: set[str] = set()
    _collect_secrets(settings, found)
    if settings.store.password:
        found.add(settings.store.password)
    for sink in settings.sinks.values():
        if isinstance(sink, WebhookSinkSettings) and sink.secret is not None:
            # The signing key without its `whsec_` prefix is just as secret.
            found.add(sink.secret.get_secret_value().removeprefix("whsec_"))
    return sorted(value for value in found if value)


def _collect_secrets(value: Any, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect_secrets(getattr(value, name), found)
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_secrets(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_secrets(item, found)


__all__ = ["REDACTED", "SecretRedactor", "configure_logging", "secrets_of"]
