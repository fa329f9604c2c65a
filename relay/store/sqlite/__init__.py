"""The SQLite part of the store: one file, one replica.

- `store`: `SqliteStore`, its connection, lifecycle and transactions (WAL, `BEGIN
  IMMEDIATE`, one lock per store);
- `dialect`: `?` placeholders, ISO text timestamps, `IN (...)` lists, and the statements
  only SQLite runs this way (alert and outbox inserts, claims under the write lock);
- `migrations`: the versioned SQLite schema;
- `errors`: `sqlite3` errors as `StoreError`s that say what to do.

Invariant: nothing here knows of `relay.store.postgres` (an import-linter contract);
what both backends share lives in `relay.store` itself.
"""

from __future__ import annotations

from relay.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
