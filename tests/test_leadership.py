"""Source leadership on PostgreSQL: leases in a table, shared out among live replicas.

Several stores in one process are the replicas; each test drives their rounds itself
(`leadership.round()`; the background rounds are an hour apart), and reads who holds
what from the table, the server's truth. Expiry is made by moving the server's rows
back in time, as a replica that stopped renewing would leave them.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.errors import StoreError
from relay.store.postgres import PostgresStore
from relay.store.postgres.leadership import fair_share
from tests import store_backends
from tests.test_store_alerts import alert_cycle

pg_url = store_backends.pg_url
SOURCES = [f"source-{n}" for n in range(9)]
TTL_S = 30.0


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


def replica(pg_url: str) -> PostgresStore:
    return PostgresStore(pg_url, lease_ttl_s=TTL_S, renew_every_s=3600)


async def held(admin: asyncpg.Connection) -> Counter[str]:
    """Unexpired leases per holder, as the server has them."""
    rows = await admin.fetch(
        "SELECT holder FROM source_leases WHERE holder IS NOT NULL "
        "AND expires_at > clock_timestamp()"
    )
    return Counter(row["holder"] for row in rows)


async def rounds(stores: Sequence[PostgresStore], passes: int) -> None:
    for _ in range(passes):
        for store in stores:
            await store.leadership.round()


async def join(store: PostgresStore, sources: Sequence[str] = SOURCES) -> None:
    for source in sources:
        await store.try_lead(source)


def test_the_fair_share_leads_every_source() -> None:
    assert [fair_share(9, live) for live in (0, 1, 2, 3, 4)] == [9, 9, 5, 3, 3]
    for total in range(20):
        for live in range(1, 6):
            assert fair_share(total, live) * live >= total
            assert fair_share(total, live) <= math.ceil(total / live)


async def test_one_store_leads_a_source_until_it_closes(pg_url: str) -> None:
    first, second = replica(pg_url), replica(pg_url)
    async with first, second:
        assert await first.try_lead("a") is True
        assert await first.try_lead("a") is True  # still leading
        assert await second.try_lead("a") is False
        assert await second.try_lead("b") is True  # two replicas, two sources: one each
        assert await first.try_lead("b") is False
        await first.close()  # gives up its leases at once
        await second.leadership.round()
        assert await second.try_lead("a") is True
        await first.open()
        assert await first.try_lead("a") is False
    with pytest.raises(StoreError, match="not open"):
        await first.try_lead("a")


async def test_three_replicas_share_nine_sources_and_a_new_one_takes_its_share(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    async with AsyncExitStack() as stack:
        a, b, c = [await stack.enter_async_context(replica(pg_url)) for _ in range(3)]
        await join(a)
        assert (await held(admin))[a.leadership.replica_id] == 9  # alone, it leads all
        await join(b)
        await rounds([a, b], passes=2)
        counts = await held(admin)
        assert sorted(counts.values()) == [4, 5], counts

        await join(c)  # a new replica: within two rounds of each (4 s by default)
        await rounds([a, b, c], passes=2)
        counts = await held(admin)
        assert sum(counts.values()) == 9
        assert len(counts) == 3, counts
        assert all(2 <= n <= 4 for n in counts.values()), counts
        led = [s.leadership.leading for s in (a, b, c)]
        assert sorted(x for sources in led for x in sources) == SOURCES  # once each
        for store in (a, b, c):  # what each believes is what the server says
            assert len(store.leadership.leading) == counts[store.leadership.replica_id]

        await rounds([a, b, c], passes=3)  # settled: nothing moves any more
        assert [s.leadership.leading for s in (a, b, c)] == led


async def test_a_replica_that_stops_renewing_loses_its_sources_to_the_others(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    async with AsyncExitStack() as stack:
        a, b, c = [await stack.enter_async_context(replica(pg_url)) for _ in range(3)]
        for store in (a, b, c):
            await join(store)
        await rounds([a, b, c], passes=2)
        frozen = a.leadership.replica_id
        lost = a.leadership.leading
        assert lost
        # What a replica frozen for a TTL leaves: an old heartbeat, expired leases.
        await admin.execute(
            "UPDATE replicas SET seen_at = seen_at - make_interval(secs => $2) WHERE id = $1",
            frozen,
            TTL_S,
        )
        await admin.execute(
            "UPDATE source_leases SET expires_at = clock_timestamp() WHERE holder = $1", frozen
        )
        await rounds([b, c], passes=1)
        counts = await held(admin)
        assert frozen not in counts, counts
        assert sum(counts.values()) == 9, counts
        assert all(n <= fair_share(9, 2) for n in counts.values())
        assert lost <= b.leadership.leading | c.leadership.leading

        # Thawed, the stale leader cannot commit a cycle of a source it lost...
        source = sorted(lost)[0]
        with pytest.raises(StoreError, match="no longer led by this replica"):
            await a.commit_cycle(alert_cycle(source=source))
        new_leader = b if source in b.leadership.leading else c
        await new_leader.commit_cycle(alert_cycle(source=source))  # ...its successor can
        # ...and learns at its next round that it leads none of them.
        assert not lost & await a.leadership.round()


async def test_a_store_that_never_asked_to_lead_commits_unfenced(pg_url: str) -> None:
    # `zaia-relay once`, and every store test: no leadership asked, none enforced.
    async with replica(pg_url) as store:
        await store.commit_cycle(alert_cycle(source="prod"))
        assert await store.get_cursor("prod") is not None


async def test_rounds_run_together_never_give_a_source_to_two_replicas(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    async with AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(replica(pg_url)) for _ in range(5)]
        await asyncio.gather(*(join(s) for s in stores))
        for _ in range(4):
            led = await asyncio.gather(*(s.leadership.round() for s in stores))
            everyone = [source for sources in led for source in sources]
            assert len(everyone) == len(set(everyone)), led
        assert sorted(everyone) == SOURCES  # settled: all led, each by one
        assert all(len(sources) <= fair_share(9, 5) for sources in led)
        assert sum((await held(admin)).values()) == 9


async def test_a_frozen_replica_holds_no_row_lock_longer_than_its_lease(pg_url: str) -> None:
    # A replica stopped inside a transaction (a cycle's commit holds its lease row) has
    # its session closed by the server once idle for the lease's length.
    store = PostgresStore(pg_url, lease_ttl_s=7)
    async with store, store._reading("read a setting") as session:
        [row] = await session.fetch("SHOW idle_in_transaction_session_timeout")
    assert row[0] == "7s"


async def test_a_source_only_one_replica_polls_is_led_even_beyond_its_share(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    # A rolling deploy: two replicas still poll "a" alone, the new one "a", "d" and "e".
    # Three sources, three replicas: a share of one each, and "e" would never be led.
    old_1, old_2, new = replica(pg_url), replica(pg_url), replica(pg_url)
    async with old_1, old_2, new:
        await join(old_1, ["a"])
        await join(old_2, ["a"])
        await join(new, ["a", "d", "e"])
        await rounds([old_1, old_2, new], passes=2)
        assert (
            await admin.fetchval(
                "SELECT count(*) FROM source_leases WHERE holder IS NULL OR "
                "expires_at <= clock_timestamp()"
            )
            == 1
        )  # one of d and e is nobody's
        # A whole TTL later (the rows moved back), the one replica polling it takes it.
        await admin.execute(
            "UPDATE source_leases SET expires_at = expires_at - make_interval(secs => $1) "
            "WHERE holder IS NULL",
            TTL_S + 1,
        )
        await rounds([old_1, old_2, new], passes=3)  # and keeps it round after round
        leases = await admin.fetch("SELECT source, holder FROM source_leases")
        holders = {row["source"]: row["holder"] for row in leases}
        new_id = new.leadership.replica_id
        assert holders["d"] == new_id
        assert holders["e"] == new_id
        assert holders["a"] is not None
