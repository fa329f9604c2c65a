"""Versioned schema of the SQLite store.

Invariants:
- `MIGRATIONS` is append-only: a released migration is never edited, a change is a new
  migration with the next version. Versions start at 1 and have no gaps.
- The version of a database is the highest `version` in `schema_migrations`; a database
  without that table is empty (version 0).
- `migrate` applies every pending migration in ONE transaction, taken with
  `BEGIN IMMEDIATE` so two processes opening the same file at once cannot both apply
  it: the second waits, then finds nothing left to do. A failure leaves the database at
  its old version.
- A database at a version newer than this code knows is refused, never touched.

Timestamps are ISO 8601 UTC text with microseconds and a `Z` (fixed width, so they
sort as text); booleans are 0/1; JSON is text.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from relay.errors import StoreError

__all__ = ["LATEST_VERSION", "MIGRATIONS", "Migration", "migrate", "schema_version"]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="execution states and source cursors",
        statements=(
            """
            CREATE TABLE executions (
                source            TEXT    NOT NULL,
                id                TEXT    NOT NULL,
                status            TEXT    NOT NULL,
                credits_used      REAL    NOT NULL,
                kind              TEXT    NOT NULL,
                responder_id      TEXT    NOT NULL,
                parent_id         TEXT,
                agent_id          TEXT,
                workflow_id       TEXT,
                created_at        TEXT    NOT NULL,
                updated_at        TEXT    NOT NULL,
                started_at        TEXT    NOT NULL,
                ended_at          TEXT,
                is_purged         INTEGER NOT NULL,
                last_seen_at      TEXT    NOT NULL,
                reported_statuses TEXT    NOT NULL DEFAULT '[]',
                PRIMARY KEY (source, id)
            ) WITHOUT ROWID
            """,
            # The round-robin refresh reads running states in last-seen order.
            """
            CREATE INDEX executions_by_status
                ON executions (source, status, last_seen_at, id)
            """,
            # Pruning looks only at finished states; a partial index keeps it proportional
            # to what it deletes instead of scanning the table. The expression must match
            # the one in the DELETE exactly for SQLite to use it.
            """
            CREATE INDEX executions_prunable
                ON executions (coalesce(ended_at, last_seen_at))
                WHERE status <> 'running'
            """,
            """
            CREATE TABLE source_cursors (
                source          TEXT    NOT NULL PRIMARY KEY,
                first_poll_done INTEGER NOT NULL,
                last_success_at TEXT
            ) WITHOUT ROWID
            """,
        ),
    ),
    Migration(
        version=2,
        name="transitions",
        statements=(
            # `seq` only orders transitions observed in the same microsecond; `key` is the
            # identity and its uniqueness is what makes a replayed cycle harmless.
            """
            CREATE TABLE transitions (
                seq            INTEGER PRIMARY KEY,
                key            TEXT    NOT NULL UNIQUE,
                source         TEXT    NOT NULL,
                execution_id   TEXT    NOT NULL,
                kind           TEXT    NOT NULL,
                from_status    TEXT    NOT NULL,
                to_status      TEXT    NOT NULL,
                credits_before REAL    NOT NULL,
                credits_after  REAL    NOT NULL,
                observed_at    TEXT    NOT NULL,
                alertable      INTEGER NOT NULL,
                snapshot       TEXT    NOT NULL
            )
            """,
            "CREATE INDEX transitions_by_time ON transitions (observed_at, seq)",
            "CREATE INDEX transitions_by_source ON transitions (source, observed_at, seq)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_CREATE_BOOKKEEPING = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER NOT NULL PRIMARY KEY,
        name       TEXT    NOT NULL,
        applied_at TEXT    NOT NULL
    )
"""


async def schema_version(conn: aiosqlite.Connection) -> int:
    """The version of the open database; 0 when it was never migrated."""
    rows = await conn.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    if not list(rows):
        return 0
    rows = await conn.execute_fetchall("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(next(iter(rows))[0])


async def migrate(
    conn: aiosqlite.Connection, *, location: str, target: int | None = None
) -> tuple[int, int]:
    """Bring the schema to `target` (default: the latest); return (before, after) versions.

    `conn` must be in autocommit mode (`isolation_level=None`): this function issues
    its own BEGIN/COMMIT. `location` names the database in error messages.
    """
    goal = LATEST_VERSION if target is None else target
    if not 0 <= goal <= LATEST_VERSION:
        raise ValueError(f"target version {goal} is not between 0 and {LATEST_VERSION}")
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_CREATE_BOOKKEEPING)
        current = await schema_version(conn)
        if current > LATEST_VERSION:
            raise StoreError(
                f"store {location} has schema version {current}, written by a newer "
                f"zaia-relay (this one knows up to {LATEST_VERSION}); upgrade zaia-relay "
                "or point store.url elsewhere"
            )
        for migration in MIGRATIONS:
            if current < migration.version <= goal:
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (migration.version, migration.name),
                )
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    return current, max(current, goal)
