"""Durable state of the relay: execution states, transitions, source cursors, alerts,
the delivery outbox, silences and the state of windowed rules.

`open_store(url)` picks the implementation from the URL scheme and returns a `Store`
that is not yet opened (call `await store.open()`, or use `async with`).

    sqlite:///var/lib/zaia-relay/state.db   absolute path /var/lib/zaia-relay/state.db
    sqlite:state.db, sqlite://data/state.db relative to the working directory
    postgresql://user@host/db               PostgreSQL: several replicas share it

Everything after `sqlite:` (and an optional `//`) is the file path, so the documented
default `sqlite:///var/lib/zaia-relay/state.db` names an absolute path. An in-memory
SQLite database is refused: the store needs a file for its WAL journal and to survive
restarts.

This module is the store's public surface: the rest of the relay imports from here (or
from `relay.store.base` and `relay.store.records`), never from the other modules.
Layout:
- `base` (the `Store` protocol) and `records` (what it takes and gives);
- `sql_store`, `sql_alerts`, `sql_outbox`: the whole `Store` on SQL, written once;
  `sql` (the statements both databases run), `rows` (records to parameters and rows
  back, by column name), `backend` (what a database supplies: its dialect, sessions and
  transactions), `migration` (what both versioned schemas share);
- `sqlite` and `postgres`: one package per database, each knowing nothing of the other.
"""

from __future__ import annotations

import os
from pathlib import Path

from relay.errors import ConfigError, ConfigProblem
from relay.store.base import Store, execution_snapshot
from relay.store.postgres import PostgresStore
from relay.store.records import (
    AlertDelivery,
    AlertPage,
    CommitOutcome,
    CycleResult,
    DeadLetter,
    DeliveryStatus,
    ExecutionStats,
    MessageRefRecord,
    OutboxCounts,
    OutboxItem,
    PruneResult,
    StoredAlert,
    StoredTransition,
)
from relay.store.sqlite import SqliteStore

__all__ = [
    "AlertDelivery",
    "AlertPage",
    "CommitOutcome",
    "CycleResult",
    "DeadLetter",
    "DeliveryStatus",
    "ExecutionStats",
    "MessageRefRecord",
    "OutboxCounts",
    "OutboxItem",
    "PostgresStore",
    "PruneResult",
    "SqliteStore",
    "Store",
    "StoredAlert",
    "StoredTransition",
    "execution_snapshot",
    "open_store",
    "sqlite_path",
]

_EXAMPLE = "sqlite:///var/lib/zaia-relay/state.db"


def _url_problem(message: str) -> ConfigError:
    return ConfigError([ConfigProblem("store.url", message)])


def sqlite_path(url: str) -> Path:
    """The file a `sqlite:` URL names; `ConfigError` at `store.url` when it names none."""
    if not url.startswith("sqlite:"):
        raise _url_problem(f"{url!r} is not a sqlite: URL (for example {_EXAMPLE})")
    rest = url.removeprefix("sqlite:").removeprefix("//")
    if "?" in rest or "#" in rest:
        raise _url_problem(
            f"{url!r}: query parameters are not supported; give only the path, as in {_EXAMPLE}"
        )
    if rest in ("", "/"):
        raise _url_problem(f"{url!r} names no file; give a path, as in {_EXAMPLE}")
    name = rest.rsplit("/", 1)[-1]
    if name == ":memory:" or rest.startswith("file::memory:"):
        raise _url_problem(
            "an in-memory SQLite database cannot be used: the store needs a file for its "
            f"WAL journal and to survive restarts; give a path, as in {_EXAMPLE}"
        )
    if rest.startswith("/"):
        # `sqlite:////abs` (the SQLAlchemy spelling) means the same file as `sqlite:///abs`.
        rest = "/" + rest.lstrip("/")
    return Path(os.path.abspath(rest))


def open_store(url: str) -> Store:
    """A store for `url` (not yet opened): a SQLite file, or a PostgreSQL database.
    Raises `ConfigError` for a malformed or unsupported URL."""
    scheme, sep, _ = url.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise _url_problem(f"{url!r} is not a URL; use for example {_EXAMPLE}")
    if scheme == "sqlite":
        return SqliteStore(sqlite_path(url))
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # `postgresql+asyncpg://` (the SQLAlchemy spelling) means the same database.
        return PostgresStore("postgresql" + url[len(scheme) :])
    raise _url_problem(f"unsupported scheme {scheme!r}; use for example {_EXAMPLE}")
