"""Outbox leases on PostgreSQL: short, renewed while their delivery runs, so what a dead
replica had claimed is due again within `CLAIM_LEASE_S` (and SQLite's are as asked).

Two stores are two replicas; the lease clock of the first is a counter the test moves,
and its renewals are run by the test (`claims.renew()`), not by waiting (its own renewal
task is set to wait an hour, so it never runs beside the test's).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from relay.store import SqliteStore
from relay.store.postgres import PostgresStore
from relay.store.postgres.claims import CLAIM_LEASE_S
from tests import store_backends
from tests.test_store_postgres import _enqueue
from tests.test_store_sqlite import T0

pg_url = store_backends.pg_url
ASKED_S = 85.0  # what a worker asks for with the default 10 s timeout


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_a_dead_replicas_claims_are_due_again_after_the_short_lease(pg_url: str) -> None:
    async with PostgresStore(pg_url) as dead, PostgresStore(pg_url) as alive:
        sent = await _enqueue(dead, 3, "oncall")
        claimed = await dead.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        assert len(claimed) == 3
        assert await dead.next_due_at("oncall") == T0 + timedelta(seconds=CLAIM_LEASE_S)
        # It renews nothing from here on, as a process killed mid-step.
        assert await alive.claim_due("oncall", now=at(CLAIM_LEASE_S - 1), limit=10, lease_s=9) == []
        again = await alive.claim_due("oncall", now=at(CLAIM_LEASE_S), limit=10, lease_s=9)
        assert {i.notification.id for i in again} == {n.id for n in sent}


async def test_claims_are_renewed_while_delivering_up_to_the_lease_asked(pg_url: str) -> None:
    clock = Clock()
    async with (
        PostgresStore(pg_url, clock=clock, claims_renew_every_s=3600) as worker,
        PostgresStore(pg_url) as other,
    ):
        await _enqueue(worker, 2, "oncall")
        await worker.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        assert await worker.claims.renew() == 0  # no time has passed: nothing to push on
        clock.now_s += 10
        assert await worker.claims.renew() == 2
        assert await worker.next_due_at("oncall") == at(10 + CLAIM_LEASE_S)
        assert await other.claim_due("oncall", now=at(CLAIM_LEASE_S + 1), limit=10, lease_s=9) == []
        clock.now_s += 500  # a step stuck far longer than it can last is not kept for ever
        assert await worker.claims.renew() == 2
        assert await worker.next_due_at("oncall") == at(ASKED_S)
        assert await worker.claims.renew() == 0
        assert worker.claims.held == 0
        assert len(await other.claim_due("oncall", now=at(ASKED_S), limit=10, lease_s=9)) == 2


async def test_a_settled_or_retried_row_is_never_renewed(pg_url: str) -> None:
    clock = Clock()
    async with PostgresStore(pg_url, clock=clock, claims_renew_every_s=3600) as worker:
        first, second = await _enqueue(worker, 2, "oncall")
        await worker.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        await worker.mark_delivered("oncall", [first.id], now=at(1))
        await worker.mark_retry("oncall", second.id, next_attempt_at=at(300), error="503")
        clock.now_s += 10
        assert await worker.claims.renew() == 0
        assert worker.claims.held == 0
        assert await worker.next_due_at("oncall") == at(300)  # the retry time stands


async def test_sqlite_leases_are_as_long_as_asked(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "state.db") as store:
        await _enqueue(store, 1, "oncall")  # type: ignore[arg-type]
        await store.claim_due("oncall", now=T0, limit=10, lease_s=ASKED_S)
        assert await store.next_due_at("oncall") == at(ASKED_S)
