"""The one exception hierarchy of zaia-relay.

    RelayError
    ├── ConfigError            the configuration is wrong; carries every problem found
    ├── SourceError            the Zaia API could not be read (names the source, never the key)
    │   ├── SourceUnauthorized 401/403: the API key is wrong or revoked
    │   ├── SourceNotFound     404 for an execution
    │   ├── SourceRejected     another 4xx (400, 412), or a redirect: the request was refused
    │   └── SourceUnavailable  5xx, timeouts, connection errors, bodies that are not JSON
    │       ├── SourceRateLimited      429 and retries ran out; carries `retry_after_s`
    │       └── SourceInvalidResponse  JSON, but not of the documented shape
    ├── StoreError             the state store failed
    │   └── StoreUnwritable    it refuses writes: disk full, read-only file or database
    └── SinkError              a sink refused or failed a delivery (`retryable`: try again?)

Every message says what to do about it, because it may be the only thing an
operator sees. The exit codes of the command line are here too: they are how an error
reaches a shell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Exit codes of every command: done; failed (the relay, a sink or the store said no);
# the command line or the configuration is wrong (argparse also exits with 2).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class RelayError(Exception):
    """Base class of every error zaia-relay raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, at a dotted path like `rules.0.sinks`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(RelayError):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(RelayError):
    def __init__(self, source: str, message: str, *, status_code: int | None = None) -> None:
        self.source = source
        self.status_code = status_code
        super().__init__(f"source {source!r}: {message}")


class SourceUnauthorized(SourceError):
    """The API refused our key; polling this source cannot succeed until it is fixed."""


class SourceNotFound(SourceError):
    """The execution asked for does not exist (or is not visible to this key)."""


class SourceRejected(SourceError):
    """The API refused the request as malformed (400, 412, other 4xx)."""


class SourceUnavailable(SourceError):
    """A transient failure: 5xx, timeout, connection error or a body that is not JSON."""


class SourceRateLimited(SourceUnavailable):
    """429 and retries ran out (or `Retry-After` was too long to wait within one request)."""

    def __init__(self, source: str, message: str, *, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(source, message, status_code=429)


class SourceInvalidResponse(SourceUnavailable):
    """The answer was JSON but not of the documented shape (the API may have changed)."""


class StoreError(RelayError):
    """The state store failed; the cycle that hit it is retried from stored state."""


class StoreUnwritable(StoreError):
    """The store answers but refuses writes (disk full, read-only); `/readyz` says so."""


class SinkError(RelayError):
    def __init__(
        self, sink: str, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        self.sink = sink
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        super().__init__(f"sink {sink!r}: {message}")
