"""Versioned schema of the PostgreSQL store.

The PostgreSQL schema has its OWN version numbers, independent of the SQLite ones in
`relay.store.sqlite.migrations`: no PostgreSQL store existed before SQLite's version 5,
so PostgreSQL's version 1 is the whole schema SQLite reached at its version 5 (states,
cursors, transitions, alerts, outbox, silences, group states, message references).

Invariants (besides those of every schema, in `relay.store.migration`):
- The version of a database is the highest `version` in `schema_migrations` of the
  schema the connection's `search_path` selects; no such table means version 0.
- `migrate` applies every pending migration in ONE transaction that first takes a
  transaction-level advisory lock, so replicas starting together queue: the first one
  migrates, the others then find nothing left to do. A failure leaves the old version.

Types: datetimes are `timestamptz` (microsecond precision, UTC on the way out);
booleans are `boolean`; floats `double precision` (bit-exact round trips); JSON bodies
are `text` holding the same compact JSON the SQLite store writes (`relay.domain.codec`),
so both backends store byte-identical bodies. Text columns that are sorted or paged on
are `COLLATE "C"`, so ids order bytewise, as in SQLite, whatever the database's locale.
Columns are named after the record fields they hold, as in SQLite (`relay.store.sql`).
"""

from __future__ import annotations

from typing import Any

from relay.store.migration import Migration, goal_version, to_apply

__all__ = ["LATEST_VERSION", "MIGRATIONS", "migrate", "schema_version"]


_CREATE_BOOKKEEPING = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer     NOT NULL PRIMARY KEY,
        name       text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
    )
"""
# Serialises migrations of every replica (transaction-scoped: released at COMMIT). The
# two-key form lives in another key space than the one-key advisory locks that led
# sources before version 2, so a source named "migrate" of an older replica cannot
# block every replica's start.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('zaia-relay'), hashtext('migrate'))"


# Version 1 is the whole schema, as SQLite had it at its version 5.
_WHOLE_SCHEMA = Migration(
    version=1,
    name="the schema of SQLite version 5: states, transitions, alerts, outbox, rules",
    statements=(
        """
            CREATE TABLE executions (
                source            text COLLATE "C" NOT NULL,
                id                text COLLATE "C" NOT NULL,
                status            text             NOT NULL,
                credits_used      double precision NOT NULL,
                kind              text             NOT NULL,
                responder_id      text             NOT NULL,
                parent_id         text,
                agent_id          text,
                workflow_id       text,
                created_at        timestamptz      NOT NULL,
                updated_at        timestamptz      NOT NULL,
                started_at        timestamptz      NOT NULL,
                ended_at          timestamptz,
                is_purged         boolean          NOT NULL,
                last_seen_at      timestamptz      NOT NULL,
                reported_statuses text             NOT NULL DEFAULT '[]',
                origin_type       text,
                is_agentic        boolean          NOT NULL DEFAULT false,
                PRIMARY KEY (source, id)
            )
            """,
        # The round-robin refresh reads running states in last-seen order.
        "CREATE INDEX executions_by_status ON executions (source, status, last_seen_at, id)",
        # Pruning looks only at finished states (the expression matches the DELETE).
        """
            CREATE INDEX executions_prunable ON executions ((coalesce(ended_at, last_seen_at)))
                WHERE status <> 'running'
            """,
        # Windowed rules read what ended within their window, each cycle.
        "CREATE INDEX executions_by_end ON executions (source, ended_at)",
        """
            CREATE TABLE source_cursors (
                source          text COLLATE "C" NOT NULL PRIMARY KEY,
                first_poll_done boolean          NOT NULL,
                last_success_at timestamptz
            )
            """,
        # `seq` only orders transitions observed in the same microsecond; `key` is the
        # identity and its uniqueness is what makes a replayed cycle harmless.
        """
            CREATE TABLE transitions (
                seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key            text COLLATE "C" NOT NULL UNIQUE,
                source         text COLLATE "C" NOT NULL,
                execution_id   text             NOT NULL,
                kind           text             NOT NULL,
                from_status    text             NOT NULL,
                to_status      text             NOT NULL,
                credits_before double precision NOT NULL,
                credits_after  double precision NOT NULL,
                observed_at    timestamptz      NOT NULL,
                alertable      boolean          NOT NULL,
                snapshot       text             NOT NULL
            )
            """,
        "CREATE INDEX transitions_by_time ON transitions (observed_at, seq)",
        "CREATE INDEX transitions_by_source ON transitions (source, observed_at, seq)",
        # `body` is the alert as JSON (relay.domain.codec); the other columns are what
        # listing, paging and pruning filter on.
        """
            CREATE TABLE alerts (
                id         text COLLATE "C" NOT NULL PRIMARY KEY,
                source     text COLLATE "C" NOT NULL,
                rule       text COLLATE "C" NOT NULL,
                state      text             NOT NULL,
                windowed   boolean          NOT NULL,
                created_at timestamptz      NOT NULL,
                updated_at timestamptz      NOT NULL,
                body       text             NOT NULL
            )
            """,
        "CREATE INDEX alerts_by_created ON alerts (created_at, id)",
        "CREATE INDEX alerts_by_rule ON alerts (rule, created_at, id)",
        "CREATE INDEX alerts_by_state ON alerts (state, created_at, id)",
        "CREATE INDEX alerts_by_update ON alerts (updated_at)",
        # One row per (notification, sink), ever: the unique pair makes enqueueing the
        # same notification twice a no-op. `seq` keeps enqueue order among equals.
        """
            CREATE TABLE outbox (
                seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                id              text COLLATE "C" NOT NULL,
                sink            text COLLATE "C" NOT NULL,
                alert_id        text COLLATE "C" NOT NULL,
                kind            text             NOT NULL,
                status          text             NOT NULL,
                enqueued_at     timestamptz      NOT NULL,
                next_attempt_at timestamptz      NOT NULL,
                attempts        integer          NOT NULL DEFAULT 0,
                last_error      text,
                delivered_at    timestamptz,
                dead_at         timestamptz,
                body            text             NOT NULL,
                UNIQUE (id, sink),
                CHECK (status IN ('pending', 'delivered', 'dead', 'silenced'))
            )
            """,
        "CREATE INDEX outbox_due ON outbox (sink, next_attempt_at, seq) WHERE status = 'pending'",
        "CREATE INDEX outbox_dead ON outbox (sink, dead_at, seq) WHERE status = 'dead'",
        "CREATE INDEX outbox_settled ON outbox (delivered_at) "
        "WHERE status IN ('delivered', 'silenced')",
        "CREATE INDEX outbox_by_alert ON outbox (alert_id, status)",
        """
            CREATE TABLE silences (
                id         text COLLATE "C" NOT NULL PRIMARY KEY,
                matchers   text             NOT NULL,
                starts_at  timestamptz      NOT NULL,
                ends_at    timestamptz      NOT NULL,
                creator    text             NOT NULL,
                comment    text             NOT NULL,
                created_at timestamptz      NOT NULL,
                expired_at timestamptz,
                origin     text             NOT NULL
            )
            """,
        "CREATE INDEX silences_by_end ON silences (ends_at)",
        """
            CREATE TABLE group_states (
                source           text COLLATE "C" NOT NULL,
                rule             text COLLATE "C" NOT NULL,
                group_key        text COLLATE "C" NOT NULL,
                group_labels     text             NOT NULL,
                firing           boolean          NOT NULL,
                episode          integer          NOT NULL,
                fired_at         timestamptz,
                last_notified_at timestamptz,
                reminders_sent   integer          NOT NULL,
                value            double precision,
                resolved_at      timestamptz,
                updated_at       timestamptz      NOT NULL,
                PRIMARY KEY (source, rule, group_key)
            )
            """,
        """
            CREATE TABLE message_refs (
                sink       text COLLATE "C" NOT NULL,
                alert_id   text COLLATE "C" NOT NULL,
                channel    text             NOT NULL,
                ts         text             NOT NULL,
                single     boolean          NOT NULL,
                created_at timestamptz      NOT NULL,
                PRIMARY KEY (sink, alert_id)
            )
            """,
        "CREATE INDEX message_refs_by_age ON message_refs (created_at)",
    ),
)

# Version 2: source leadership by leases in tables (`relay.store.postgres.leadership`),
# instead of session-level advisory locks.
_SOURCE_LEASES = Migration(
    version=2,
    name="source leases and replica heartbeats",
    statements=(
        """
            CREATE TABLE source_leases (
                source     text COLLATE "C" NOT NULL PRIMARY KEY,
                holder     text,
                expires_at timestamptz      NOT NULL
            )
            """,
        """
            CREATE TABLE replicas (
                id      text        NOT NULL PRIMARY KEY,
                seen_at timestamptz NOT NULL
            )
            """,
    ),
)

# Version 3: a claim marks its rows, every settle clears the mark (SQLite's version 6).
# PostgreSQL keeps short renewed leases and never releases on start; the column is
# there because the settling statements are shared.
_CLAIMED = Migration(
    version=3,
    name="claimed outbox rows",
    statements=("ALTER TABLE outbox ADD COLUMN claimed boolean NOT NULL DEFAULT false",),
)

# Version 4: route groups in the outbox (SQLite's version 7): a notification's group,
# and the message it went out in, fixed at its first attempt.
_GROUPS = Migration(
    version=4,
    name="route groups in the outbox",
    statements=(
        'ALTER TABLE outbox ADD COLUMN group_key text COLLATE "C"',
        'ALTER TABLE outbox ADD COLUMN message_id text COLLATE "C"',
        "ALTER TABLE outbox ADD COLUMN message_at timestamptz",
        "CREATE INDEX outbox_by_group ON outbox (sink, group_key, status) "
        "WHERE group_key IS NOT NULL",
    ),
)

# Version 5: acknowledged alerts (SQLite's version 8), beside the body that a windowed
# alert's updates replace.
_ACKS = Migration(
    version=5,
    name="acknowledged alerts",
    statements=(
        "ALTER TABLE alerts ADD COLUMN acked_by text",
        "ALTER TABLE alerts ADD COLUMN acked_at timestamptz",
        "ALTER TABLE alerts ADD COLUMN ack_comment text",
    ),
)

# Version 6: what the status page's execution statistics read (SQLite's version 9),
# covered by one index so a day of executions is one index-only range scan.
_STATS = Migration(
    version=6,
    name="execution statistics of the status page",
    statements=(
        "CREATE INDEX executions_stats ON executions "
        "(ended_at, source, responder_id, status, credits_used, started_at) "
        "WHERE ended_at IS NOT NULL",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (
    _WHOLE_SCHEMA,
    _SOURCE_LEASES,
    _CLAIMED,
    _GROUPS,
    _ACKS,
    _STATS,
)
LATEST_VERSION = MIGRATIONS[-1].version


async def schema_version(conn: Any) -> int:
    """The version of the schema `conn` sees; 0 when it was never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def applied_migrations(conn: Any) -> dict[int, str]:
    """Version -> name of the migrations `schema_migrations` records (it must exist)."""
    rows = await conn.fetch("SELECT version, name FROM schema_migrations")
    return {int(row["version"]): str(row["name"]) for row in rows}


async def migrate(conn: Any, *, location: str, target: int | None = None) -> tuple[int, int]:
    """Bring the schema to `target` (default: the latest); return (before, after).

    `conn` is an asyncpg connection outside any transaction; `location` names the
    database in error messages (without its password)."""
    goal = goal_version(MIGRATIONS, target)
    async with conn.transaction():
        await conn.execute(_MIGRATION_LOCK)
        await conn.execute(_CREATE_BOOKKEEPING)
        applied = await applied_migrations(conn)
        current = max(applied, default=0)
        store = f"postgresql store {location}"
        for migration in to_apply(MIGRATIONS, applied=applied, goal=goal, store=store):
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    return current, max(current, goal)
