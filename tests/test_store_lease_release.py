"""Leases a killed daemon left (issue 13, item 8): on SQLite the next daemon hands them
back at start, due now and one attempt fewer; retries a settle scheduled stay scheduled.
PostgreSQL releases nothing (another replica may hold them; its leases are short).

A "crash" is closing the store without settling what was claimed.
"""

from __future__ import annotations

from pathlib import Path

from relay.store import SqliteStore
from relay.store.postgres import PostgresStore
from relay.store.postgres.claims import CLAIM_LEASE_S
from tests import store_backends
from tests.test_store_claims import ASKED_S, at
from tests.test_store_postgres import _enqueue
from tests.test_store_sqlite import T0

pg_url = store_backends.pg_url


async def test_a_restarted_daemon_gets_its_predecessors_leases_back_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore(path) as crashed:
        in_flight, retried, delivered = await _enqueue(crashed, 3, "oncall")  # type: ignore[arg-type]
        assert len(await crashed.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)) == 3
        await crashed.mark_retry("oncall", retried.id, next_attempt_at=at(300), error="503")
        await crashed.mark_delivered("oncall", [delivered.id], now=at(1))
    async with SqliteStore(path) as daemon:
        assert await daemon.release_own_leases(now=at(2)) == 1
        assert await daemon.next_due_at("oncall") == at(2)
        (again,) = await daemon.claim_due("oncall", now=at(2), limit=10, lease_s=ASKED_S)
        assert again.notification.id == in_flight.id
        assert again.attempts == 0  # the crash did not count as a failed attempt
        await daemon.mark_delivered("oncall", [in_flight.id], now=at(3))
        assert await daemon.next_due_at("oncall") == at(300)  # the retry stays scheduled


async def test_releasing_twice_or_after_settles_releases_nothing(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        first, second = await _enqueue(store, 2, "oncall")  # type: ignore[arg-type]
        await store.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        await store.mark_dead("oncall", first.id, reason="410", now=at(1))
        await store.mark_silenced("oncall", [second.id], reason="silenced", now=at(1))
        assert await store.release_own_leases(now=at(2)) == 0
        assert await store.retry_dead(now=at(3)) == 1  # a replayed row is not claimed
        assert await store.release_own_leases(now=at(4)) == 0
        assert await store.next_due_at("oncall") == at(3)


async def test_postgres_releases_nothing(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        await _enqueue(store, 1, "oncall")
        await store.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        assert await store.release_own_leases(now=at(1)) == 0
        assert await store.next_due_at("oncall") == at(CLAIM_LEASE_S)  # the lease stands
