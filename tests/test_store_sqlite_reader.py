"""What the status page's statistics need of the SQLite store: snapshot reads (statistics,
alert lists, outbox counts) run on read-only connections that neither wait for the
writer's connection nor hold it up, nor one another; opened on first need, closed with
the store and opened anew when the store is reopened; and the dialect's epoch arithmetic is exact to
the microsecond (the time buckets split on it)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from relay.errors import StoreError
from relay.store import SqliteStore
from relay.store.sqlite.dialect import SQLITE, epoch_us_sql
from tests.stats_kit import commit_states, ended

NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
# A bound on waits that must end at once: reaching it is the failure, never the pass.
_BOUND_S = 10.0


async def _day_executions(store: SqliteStore) -> int:
    stats = await store.execution_stats(now=NOW, bucket_s=3600, buckets=24)
    return sum(count.executions for count in stats.counts)


async def test_a_long_stats_read_does_not_delay_a_commit(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "relay.db") as store:
        await commit_states(store, [ended(1, at=NOW - timedelta(hours=2))], at=NOW)
        assert await _day_executions(store) == 1
        (reader,) = store._readers
        entered, release = threading.Event(), threading.Event()

        def gate() -> int:
            # Runs on the read connection's thread: it holds that connection, inside a
            # read transaction, until the test lets it go.
            entered.set()
            release.wait(_BOUND_S)
            return 1

        await reader.create_function("relay_test_gate", 0, gate)

        async def long_read() -> None:
            async with store._reading("hold a read open", snapshot=True) as session:
                await session.fetch("SELECT relay_test_gate() AS g FROM executions")

        held = asyncio.create_task(long_read())
        try:
            assert await asyncio.to_thread(entered.wait, _BOUND_S)
            # The writer's connection is free: a cycle commits, and reads back, while
            # the read is held; and another statistics read (a page's) answers beside
            # it, on a second read connection, seeing that commit.
            async with asyncio.timeout(_BOUND_S):
                await commit_states(store, [ended(2, at=NOW - timedelta(hours=1))], at=NOW)
                assert await store.state_count() == 2
                assert await _day_executions(store) == 2
            assert not held.done()
            assert len(store._readers) == 2
        finally:
            release.set()
        await held
        # Both connections are kept for the next reads.
        assert len(store._idle_readers) == 2


async def test_close_waits_for_the_reads_under_way(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "relay.db")
    await store.open()
    await commit_states(store, [ended(1, at=NOW - timedelta(hours=2))], at=NOW)
    entered, release = asyncio.Event(), asyncio.Event()

    async def long_read() -> int:
        async with store._reading("hold a read open", snapshot=True) as session:
            entered.set()
            await release.wait()
            rows = await session.fetch("SELECT count(*) AS n FROM executions")
            return int(rows[0]["n"])

    held = asyncio.create_task(long_read())
    await entered.wait()
    closing = asyncio.create_task(store.close())
    # One turn of the loop: close runs up to its wait for the read's slot.
    await asyncio.sleep(0)
    with pytest.raises(StoreError, match="not open"):
        await _day_executions(store)  # a new read finds the store closing
    assert not closing.done()
    release.set()
    assert await held == 1  # the read under way finished on its connection
    await closing
    assert store._readers == []


async def test_a_stats_read_does_not_wait_for_an_open_write(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "relay.db") as store:
        await commit_states(store, [ended(1, at=NOW - timedelta(hours=2))], at=NOW)
        async with store._write_transaction("delete executions, not yet committed") as session:
            await session.execute("DELETE FROM executions")
            # The write lock is held: the read still answers, from what is committed.
            async with asyncio.timeout(_BOUND_S):
                assert await _day_executions(store) == 1
                assert (await store.list_alerts()).alerts == []
        assert await _day_executions(store) == 0


async def test_the_read_connection_is_lazy_read_only_and_closed_with_the_store(
    tmp_path: Path,
) -> None:
    # `?`, `#` and `%` in the path must reach SQLite as a file name, not URI syntax.
    path = tmp_path / "a b#c?%20d" / "relay.db"
    store = SqliteStore(path)
    with pytest.raises(StoreError, match="not open"):
        await _day_executions(store)
    await store.open()
    await commit_states(store, [ended(1, at=NOW - timedelta(hours=2))], at=NOW)
    assert store._readers == []  # writes and plain reads never open one
    assert await _day_executions(store) == 1
    (reader,) = store._readers
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await reader.execute("DELETE FROM executions")

    await store.close()
    assert store._readers == []
    with pytest.raises(ValueError, match="no active connection"):
        await reader.execute("SELECT 1")
    with pytest.raises(StoreError, match="not open"):
        await _day_executions(store)

    async with store:  # reopened: a new read connection, on the same file
        assert store._readers == []
        assert await _day_executions(store) == 1
        (again,) = store._readers
        assert again is not reader
    assert store._readers == []


@given(
    at=st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
    )
)
# SQLite's date functions round a fraction to the millisecond: `.9996` is the next second.
@example(at=datetime(2026, 12, 1, 2, 2, 2, 999_858, tzinfo=UTC))
@example(at=datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
def test_epoch_microseconds_are_exact_with_either_function(at: datetime) -> None:
    exact = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    with sqlite3.connect(":memory:") as conn:
        for unixepoch in (True, False):
            query = f"SELECT {epoch_us_sql('?', unixepoch=unixepoch)}"
            text = SQLITE.encode_time(at)
            (value,) = conn.execute(query, [text] * query.count("?")).fetchone()
            assert value == exact, (unixepoch, text)
