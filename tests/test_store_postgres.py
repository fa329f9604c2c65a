"""The PostgreSQL store against a real server: what only PostgreSQL has (migrations and
schema versions, URLs and errors, search_path, two pools claiming together). Leadership
is in test_leadership.py, short outbox leases in test_store_claims.py.

The scenarios shared with SQLite run on both backends from test_store_states.py (states,
transitions, cursors, message refs, prune), test_store_alerts.py, test_store_outbox.py
and test_store_silences.py.

The server is RELAY_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
Each test gets a schema of its own (selected with `?search_path=` in the store's URL),
dropped afterwards. Without a reachable server the tests skip, except in CI (`CI=true`),
where they fail: CI provides one. See tests/store_backends.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.domain.alerts import Notification
from relay.errors import StoreError
from relay.store.postgres import PostgresStore
from relay.store.postgres.schema import LATEST_VERSION, migrate
from tests import store_backends
from tests.store_backends import PG_URL, pg_admin
from tests.test_store_alerts import alert_cycle, make_alert, notify
from tests.test_store_sqlite import T0

# The fixture (a fresh schema per test), also imported from here by test_replicas.
pg_url = store_backends.pg_url
LEASE_S = 30.0


async def _enqueue(
    store: PostgresStore, count: int, *sinks: str, at: datetime = T0, prefix: str = "exec"
) -> list[Notification]:
    alerts = [make_alert(f"{prefix}-{n:04d}", at=at) for n in range(count)]
    notifications = [n for a in alerts for n in notify(a, *sinks, at=at)]
    outcome = await store.commit_cycle(alert_cycle(alerts, notifications, at=at))
    assert outcome.enqueued == len(notifications)
    return notifications


# --- lifecycle, schema, errors ----------------------------------------------------------


async def test_lifecycle_and_schema_version(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with pytest.raises(StoreError, match="not open"):
        await store.ping()
    await store.open()
    await store.open()  # idempotent
    await store.ping()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.state_count()
    async with store:  # opened again, nothing left to migrate
        await store.ping()
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert versions == list(range(1, LATEST_VERSION + 1))
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'x')")
    finally:
        await conn.close()
    with pytest.raises(StoreError, match="newer zaia-relay"):
        await PostgresStore(pg_url).open()


async def test_a_version_recorded_under_another_name_is_refused(pg_url: str) -> None:
    # An unreleased build numbered the statistics index 5 (here: acknowledgements).
    conn = await asyncpg.connect(pg_url)
    try:
        await migrate(conn, location="test", target=5)
        await conn.execute(
            "UPDATE schema_migrations SET name = 'execution statistics of the status page' "
            "WHERE version = 5"
        )
    finally:
        await conn.close()
    with pytest.raises(StoreError) as caught:
        await PostgresStore(pg_url).open()
    message = str(caught.value)
    assert "schema version 5 recorded as 'execution statistics of the status page'" in message
    assert "version 5 is 'acknowledged alerts'" in message
    conn = await asyncpg.connect(pg_url)
    try:
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 5
    finally:
        await conn.close()


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            await s.ping()
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_errors_say_what_to_do_without_the_password() -> None:
    await (await pg_admin()).close()  # skip like the others when there is no server
    refused = PostgresStore("postgresql://relay:s3cret-pw@127.0.0.1:1/relay")
    with pytest.raises(StoreError) as caught:
        await refused.open()
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "postgresql://relay@127.0.0.1:1/relay" in message
    assert "cannot connect" in message
    assert "check that it runs" in message

    missing = PG_URL.split("?")[0].rsplit("/", 1)[0] + f"/no_such_db_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreError, match="database does not exist"):
        await PostgresStore(missing).open()
    with pytest.raises(ValueError, match="min_size"):
        PostgresStore(PG_URL, min_size=3, max_size=2)
    with pytest.raises(StoreError, match="not a valid PostgreSQL URL") as caught:
        await PostgresStore("postgresql://relay:s3cret-pw@db:no-port/relay").open()
    assert "s3cret-pw" not in str(caught.value)


async def test_a_missing_schema_is_named(pg_url: str) -> None:
    missing = pg_url.rsplit("=", 1)[0] + f"=no_such_schema_{uuid.uuid4().hex[:8]}"
    with pytest.raises(StoreError, match="no schema of the search_path exists"):
        await PostgresStore(missing).open()


async def test_leading_a_source_named_migrate_blocks_no_start(pg_url: str) -> None:
    async with PostgresStore(pg_url) as leader:
        assert await leader.try_lead("migrate") is True
        # Another replica starting now still migrates (another key space of locks).
        async with asyncio.timeout(5), PostgresStore(pg_url) as starting:
            await starting.ping()


# --- two replicas claiming together (two pools) -----------------------------------------


async def _claim_rounds(
    store: PostgresStore, *, rounds: int, limit: int, barrier: asyncio.Barrier
) -> list[str]:
    got: list[str] = []
    for _ in range(rounds):
        await barrier.wait()  # every claimer starts each round together
        batch = await store.claim_due("oncall", now=T0, limit=limit, lease_s=LEASE_S)
        got += [item.notification.id for item in batch]
    return got


async def test_two_claimers_never_claim_the_same_row(pg_url: str) -> None:
    first, second = PostgresStore(pg_url, max_size=2), PostgresStore(pg_url, max_size=2)
    await first.open()
    await second.open()
    try:
        notifications = await _enqueue(first, 300, "oncall")
        # Two replicas (two pools), each with two concurrent tasks: 4 x 7 rows a round.
        claimers = (first, second, first, second)
        barrier = asyncio.Barrier(len(claimers))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_claim_rounds(c, rounds=12, limit=7, barrier=barrier))
                for c in claimers
            ]
        claimed = [ids for task in tasks for ids in task.result()]

        assert sorted(claimed) == sorted(n.id for n in notifications)
        assert len(set(claimed)) == len(claimed)
        assert tasks[0].result() + tasks[2].result()
        assert tasks[1].result() + tasks[3].result()
    finally:
        await asyncio.gather(first.close(), second.close())
