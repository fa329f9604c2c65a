"""How failures of asyncpg and the server become `StoreError`s that name the database
WITHOUT its password and say what to do.

Invariants:
- Every failure of the backend (server errors, refused or dropped connections,
  timeouts) leaves as a `StoreError`; wrong arguments (naive datetimes, one id instead
  of a collection) stay `ValueError` / `TypeError`.
- A full disk or a read-only database is a `StoreUnwritable`.
- No message holds the URL's password: the database is named by `redact_url`, and the
  password is masked in the server's own words too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]

from relay.errors import StoreError, StoreUnwritable
from relay.scrub import SecretScrubber

# What a broken or vanished connection raises, besides the server's own errors
# (InternalClientError: asyncpg's protocol state broken by a backend killed mid-call).
CONNECTION_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

# disk_full and read_only_sql_transaction: the server answers, but no write lands.
_UNWRITABLE_STATES = frozenset({"53100", "25006"})


def redact_url(url: str) -> str:
    """`url` for messages: scheme, user, host, port and database, never a password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "<unparsable postgresql URL>"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


class PgErrors:
    """The error mapping of one store (its database, its password to mask)."""

    def __init__(self, url: str) -> None:
        self.where = redact_url(url)
        self._password = urlsplit(url).password if "@" in url else None

    @contextmanager
    def mapped(self, action: str, *, malformed_url: bool = False) -> Iterator[None]:
        """Backend failures as `StoreError`s; with `malformed_url`, a `ValueError` too
        (asyncpg raises one for a URL it cannot parse, such as a port that is no number)."""
        try:
            yield
        except StoreError:
            raise
        except CONNECTION_ERRORS as exc:
            raise self.error(action, exc) from exc
        except ValueError as exc:
            if not malformed_url:
                raise
            raise self.error(action, asyncpg.ClientConfigurationError(str(exc))) from exc

    def error(self, action: str, exc: BaseException) -> StoreError:
        detail = str(exc) or type(exc).__name__
        if self._password:
            detail = SecretScrubber.of([self._password], min_length=1).scrub_text(detail)
        state = getattr(exc, "sqlstate", "") or ""
        kind = StoreUnwritable if state in _UNWRITABLE_STATES else StoreError
        return kind(f"postgresql store {self.where}: cannot {action}: {detail}; {_advice(exc)}")


def _advice(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", "") or ""
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return (
            "store.url is not a valid PostgreSQL URL; write it as "
            "postgresql://user:password@host:5432/database"
        )
    if isinstance(exc, asyncpg.InvalidPasswordError) or state in ("28P01", "28000"):
        return "the server refused the credentials; check the user and password in store.url"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "the database does not exist; create it, or fix the name in store.url"
    if state == "42501":
        return (
            "the user lacks a privilege; grant it CREATE and USAGE on the schema and "
            "read/write on the relay's tables"
        )
    if state == "3F000":
        return (
            "no schema of the search_path exists; create it, or fix search_path in "
            "store.url (or the user's default)"
        )
    if state == "53100":
        return "the database server's disk is full; free space or lower store.retention"
    if state == "25006":
        return (
            "the database is read-only (a standby, or default_transaction_read_only); "
            "point store.url at the primary"
        )
    if state == "53300" or isinstance(exc, asyncpg.TooManyConnectionsError):
        return (
            "the server has no free connections; raise max_connections or lower the "
            "pool size of the replicas"
        )
    if state.startswith("23"):
        return "a record broke a constraint of the schema; this is a bug, please report it"
    if state.startswith(("08", "57")) or isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError
    ):
        return (
            "the server cannot be reached or dropped the connection; check that it "
            "runs and accepts connections from here (host, port, pg_hba.conf, TLS); "
            "the next cycle retries"
        )
    return "check the server's log and store.url"


def described(exc: BaseException) -> str:
    """What a log line may say of a failure: a `StoreError`'s message (scrubbed of the
    URL's password), or only the name of anything else."""
    return str(exc) if isinstance(exc, StoreError) else type(exc).__name__
