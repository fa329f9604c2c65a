"""`/readyz` while the store answers reads but refuses writes (a full disk, a read-only
file), and after it takes writes again, through the real HTTP server and SQLite store.

The store's own connection is switched to `PRAGMA query_only`: SQLite then refuses
every write with SQLITE_READONLY, as it does for a read-only file, and unlike `chmod`
it holds when the tests run as root.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from relay.errors import StoreError, StoreUnwritable
from relay.store import PostgresStore, SqliteStore
from tests import store_backends
from tests.http_rig import START, HttpRig, commit_alerts, http_rig, make_alert

pg_url = store_backends.pg_url


async def refuse_writes(store: SqliteStore, refused: bool) -> None:
    # The fault sits at the transport: the relay's own connection to the file.
    conn = store._conn
    assert conn is not None
    await conn.execute(f"PRAGMA query_only = {'ON' if refused else 'OFF'}")


def ready_rig(rig: HttpRig) -> None:
    rig.mark_polled("prod")
    rig.mark_polled("staging")


async def test_readyz_says_store_unwritable_while_writes_fail_and_recovers(
    tmp_path: Path,
) -> None:
    async with http_rig(tmp_path) as rig:
        ready_rig(rig)
        assert (await rig.client.get("/readyz")).status_code == 200

        await refuse_writes(rig.store, True)
        with pytest.raises(StoreUnwritable):
            await commit_alerts(rig.store, [make_alert(1)], at=START)
        with pytest.raises(StoreUnwritable):  # a delivery update fails the same way
            await rig.store.claim_due("oncall", now=START, limit=10, lease_s=30.0)

        for _ in range(2):  # each probe is refused again: it stays unready
            response = await rig.client.get("/readyz")
            assert response.status_code == 503
            reasons = response.json()["reasons"]
            assert [r["reason"] for r in reasons] == ["store_unwritable"]
            assert reasons[0]["check"] == "store"
            assert "read-only" in reasons[0]["message"]

        await refuse_writes(rig.store, False)
        response = await rig.client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["store"] == "ok"
        await commit_alerts(rig.store, [make_alert(1)], at=START + timedelta(seconds=1))
        assert (await rig.store.get_alert(make_alert(1).id)) is not None


async def test_a_store_that_does_not_answer_is_unreachable_not_unwritable(
    tmp_path: Path,
) -> None:
    async with http_rig(tmp_path) as rig:
        ready_rig(rig)
        await refuse_writes(rig.store, True)
        with pytest.raises(StoreUnwritable):
            await commit_alerts(rig.store, [make_alert(2)], at=START)
        await rig.store.close()
        response = await rig.client.get("/readyz")
        assert response.status_code == 503
        assert [r["reason"] for r in response.json()["reasons"]] == ["store_unreachable"]


async def test_other_store_failures_are_not_taken_for_a_refusal(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        await store.close()
        with pytest.raises(StoreError) as failure:
            await commit_alerts(store, [make_alert(3)], at=START)
        assert not isinstance(failure.value, StoreUnwritable)
        assert await store.writes_refused() is None


async def test_a_read_only_postgresql_database_is_unwritable(pg_url: str) -> None:
    async with PostgresStore(pg_url, max_size=1):
        pass  # the schema, migrated while the database took writes
    read_only = f"{pg_url}&default_transaction_read_only=on"
    with pytest.raises(StoreUnwritable) as refusal:
        async with PostgresStore(read_only, max_size=1):
            pass
    assert "point store.url at the primary" in str(refusal.value)
