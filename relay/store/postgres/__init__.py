"""The PostgreSQL part of the store: one database, any number of replicas.

- `store`: `PostgresStore`, its pool, lifecycle and transactions;
- `dialect`: `$n` placeholders, `timestamptz`, `text[]` id lists, and the statements only
  PostgreSQL runs this way (bulk `unnest` inserts, claims with `FOR UPDATE SKIP LOCKED`);
- `leadership`: which replica polls which source (leases in a table, shared out);
- `claims`: short outbox leases, renewed while their delivery runs;
- `schema`: the versioned PostgreSQL schema, migrated under a transaction-level lock;
- `errors`: asyncpg and server failures as `StoreError`s without the URL's password.

Invariant: nothing here knows of `relay.store.sqlite` (an import-linter contract); what
both backends share lives in `relay.store` itself.
"""

from __future__ import annotations

from relay.store.postgres.errors import redact_url
from relay.store.postgres.store import PostgresStore

__all__ = ["PostgresStore", "redact_url"]
