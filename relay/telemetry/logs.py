"""Logging: structlog events as JSON lines in production, readable lines in a terminal.

Invariants:
- Every configured secret (of any length) is replaced by `relay.scrub.REDACTED`
  wherever it occurs in an event: the message, field values and keys, nested
  dicts/lists/tuples/sets, the text of other objects (an exception carrying a URL), and
  rendered tracebacks. `SecretStr` values are always replaced, configured or not.
- Records from the standard library (`aiohttp`, `httpx`, ...) go through the same
  redaction and renderer, so a library logging a webhook URL does not leak it.
- Timestamps are ISO 8601 in UTC.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal, TextIO

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from relay.durations import format_duration, utc_iso
from relay.scrub import REDACTED, SecretScrubber

LogFormat = Literal["auto", "json", "console"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_LEVELS |= {"error": logging.ERROR, "critical": logging.CRITICAL}
# Libraries that log every request at INFO, URL included: quiet unless debugging.
_CHATTY_LOGGERS = ("httpx", "httpcore", "aiohttp.access")


class SecretRedactor:
    """A structlog processor scrubbing every secret out of an event, however nested."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Any length: a log line is the relay's own text, and a short secret is still one.
        self._scrubber = SecretScrubber.of(secrets, min_length=1)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {self.redact(key): self.redact(value) for key, value in event_dict.items()}

    def redact_text(self, text: str) -> str:
        return self._scrubber.scrub_text(text)

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
        if not self._scrubber:
            return value
        # Anything else is rendered by its text (repr in JSON and console output).
        text = repr(value)
        if self._scrubber.finds(text) or self._scrubber.finds(str(value)):
            return self.redact_text(text)
        return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
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


__all__ = ["SecretRedactor", "configure_logging"]
