"""Versioned schema of the SQLite store.

Invariants (besides those of every schema, in `relay.store.migration`):
- The version of a database is the highest `version` in `schema_migrations`; a database
  without that table is empty (version 0).
- `migrate` applies every pending migration in ONE transaction, taken with
  `BEGIN IMMEDIATE` so two processes opening the same file at once cannot both apply
  it: the second waits, then finds nothing left to do. A failure leaves the database at
  its old version.

Timestamps are ISO 8601 UTC text with microseconds and a `Z` (fixed width, so they
sort as text); booleans are 0/1; JSON is text. Columns are named after the record
fields they hold (`relay.store.sql`).
"""

from __future__ import annotations

import aiosqlite

from relay.store.migration import Migration, goal_version, to_apply

__all__ = ["LATEST_VERSION", "MIGRATIONS", "migrate", "schema_version"]


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
    Migration(
        version=3,
        name="rule filters, alerts, outbox, silences and group states",
        statements=(
            "ALTER TABLE executions ADD COLUMN origin_type TEXT",
            "ALTER TABLE executions ADD COLUMN is_agentic INTEGER NOT NULL DEFAULT 0",
            # Windowed rules read what ended within their window, each cycle.
            "CREATE INDEX executions_by_end ON executions (source, ended_at)",
            # `body` is the alert as JSON (relay.domain.codec); the other columns are
            # what listing, paging and pruning filter on. `windowed` alerts are updated
            # in place as their group changes; per-execution ones never are.
            """
            CREATE TABLE alerts (
                id         TEXT    NOT NULL PRIMARY KEY,
                source     TEXT    NOT NULL,
                rule       TEXT    NOT NULL,
                state      TEXT    NOT NULL,
                windowed   INTEGER NOT NULL,
                created_at TEXT    NOT NULL,
                updated_at TEXT    NOT NULL,
                body       TEXT    NOT NULL
            )
            """,
            # Listing pages newest first by (created_at, id), optionally by rule or state.
            "CREATE INDEX alerts_by_created ON alerts (created_at, id)",
            "CREATE INDEX alerts_by_rule ON alerts (rule, created_at, id)",
            "CREATE INDEX alerts_by_state ON alerts (state, created_at, id)",
            "CREATE INDEX alerts_by_update ON alerts (updated_at)",
            # One row per (notification, sink), kept after delivery until pruned: the
            # unique pair is what makes enqueueing the same notification twice a no-op.
            # `seq` keeps enqueue order among rows due at the same instant.
            """
            CREATE TABLE outbox (
                seq             INTEGER PRIMARY KEY,
                id              TEXT    NOT NULL,
                sink            TEXT    NOT NULL,
                alert_id        TEXT    NOT NULL,
                kind            TEXT    NOT NULL,
                status          TEXT    NOT NULL,
                enqueued_at     TEXT    NOT NULL,
                next_attempt_at TEXT    NOT NULL,
                attempts        INTEGER NOT NULL DEFAULT 0,
                last_error      TEXT,
                delivered_at    TEXT,
                dead_at         TEXT,
                body            TEXT    NOT NULL,
                UNIQUE (id, sink)
            )
            """,
            # Partial indexes keep the hot queries (what is due, how much is pending or
            # dead) proportional to the rows that matter, not to the delivered history.
            """
            CREATE INDEX outbox_due ON outbox (sink, next_attempt_at, seq)
                WHERE status = 'pending'
            """,
            "CREATE INDEX outbox_dead ON outbox (sink, dead_at, seq) WHERE status = 'dead'",
            """
            CREATE INDEX outbox_delivered ON outbox (delivered_at)
                WHERE status = 'delivered'
            """,
            "CREATE INDEX outbox_by_alert ON outbox (alert_id, status)",
            """
            CREATE TABLE silences (
                id         TEXT NOT NULL PRIMARY KEY,
                matchers   TEXT NOT NULL,
                starts_at  TEXT NOT NULL,
                ends_at    TEXT NOT NULL,
                creator    TEXT NOT NULL,
                comment    TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expired_at TEXT,
                origin     TEXT NOT NULL
            )
            """,
            "CREATE INDEX silences_by_end ON silences (ends_at)",
            """
            CREATE TABLE group_states (
                source           TEXT    NOT NULL,
                rule             TEXT    NOT NULL,
                group_key        TEXT    NOT NULL,
                group_labels     TEXT    NOT NULL,
                firing           INTEGER NOT NULL,
                episode          INTEGER NOT NULL,
                fired_at         TEXT,
                last_notified_at TEXT,
                reminders_sent   INTEGER NOT NULL,
                value            REAL,
                resolved_at      TEXT,
                updated_at       TEXT    NOT NULL,
                PRIMARY KEY (source, rule, group_key)
            ) WITHOUT ROWID
            """,
        ),
    ),
    Migration(
        version=4,
        name="silenced notifications",
        statements=(
            # Notifications a silence settled at delivery time ('silenced') are kept and
            # pruned like delivered ones, so the prune index covers both.
            "DROP INDEX outbox_delivered",
            """
            CREATE INDEX outbox_settled ON outbox (delivered_at)
                WHERE status IN ('delivered', 'silenced')
            """,
        ),
    ),
    Migration(
        version=5,
        name="message references of sinks",
        statements=(
            # Where a sink posted the first message about an alert (Slack: channel and
            # ts), so a resolve can edit it even after a restart.
            """
            CREATE TABLE message_refs (
                sink       TEXT    NOT NULL,
                alert_id   TEXT    NOT NULL,
                channel    TEXT    NOT NULL,
                ts         TEXT    NOT NULL,
                single     INTEGER NOT NULL,
                created_at TEXT    NOT NULL,
                PRIMARY KEY (sink, alert_id)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX message_refs_by_age ON message_refs (created_at)",
        ),
    ),
    Migration(
        version=6,
        name="claimed outbox rows",
        statements=(
            # Set by a claim, cleared by every settle: what tells a lease from a retry
            # time, so a restarted daemon can hand back its predecessor's leases.
            "ALTER TABLE outbox ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        version=7,
        name="route groups in the outbox",
        statements=(
            # The route group of a notification (`relay.domain.grouping`), and the
            # message it went out in: set at its first attempt, so a retry carries the
            # same members. `message_at` is when that message was first attempted.
            "ALTER TABLE outbox ADD COLUMN group_key TEXT",
            "ALTER TABLE outbox ADD COLUMN message_id TEXT",
            "ALTER TABLE outbox ADD COLUMN message_at TEXT",
            """
            CREATE INDEX outbox_by_group ON outbox (sink, group_key, status)
                WHERE group_key IS NOT NULL
            """,
        ),
    ),
    Migration(
        version=8,
        name="acknowledged alerts",
        statements=(
            # Columns beside the body, which a windowed alert's updates replace: an
            # acknowledgement outlives them. NULL `acked_at`: not acknowledged.
            "ALTER TABLE alerts ADD COLUMN acked_by TEXT",
            "ALTER TABLE alerts ADD COLUMN acked_at TEXT",
            "ALTER TABLE alerts ADD COLUMN ack_comment TEXT",
        ),
    ),
    Migration(
        version=9,
        name="execution statistics of the status page",
        statements=(
            # Covers what `relay.store.sql_stats` reads of the executions that ended in
            # a window, so a day of them is one index range scan, no table look-ups.
            """
            CREATE INDEX executions_stats
                ON executions (ended_at, source, responder_id, status, credits_used, started_at)
                WHERE ended_at IS NOT NULL
            """,
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


async def applied_migrations(conn: aiosqlite.Connection) -> dict[int, str]:
    """Version -> name of the migrations `schema_migrations` records (it must exist)."""
    rows = await conn.execute_fetchall("SELECT version, name FROM schema_migrations")
    return {int(version): str(name) for version, name in rows}


async def migrate(
    conn: aiosqlite.Connection, *, location: str, target: int | None = None
) -> tuple[int, int]:
    """Bring the schema to `target` (default: the latest); return (before, after) versions.

    `conn` must be in autocommit mode (`isolation_level=None`): this function issues
    its own BEGIN/COMMIT. `location` names the database in error messages.
    """
    goal = goal_version(MIGRATIONS, target)
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_CREATE_BOOKKEEPING)
        applied = await applied_migrations(conn)
        current = max(applied, default=0)
        for migration in to_apply(
            MIGRATIONS, applied=applied, goal=goal, store=f"store {location}"
        ):
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
