"""Acknowledgements in the store, on SQLite and on PostgreSQL: written once, read back
with the alert, kept through a windowed alert's updates and a reopen, and an older
database upgraded to hold them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import aiosqlite
import asyncpg  # type: ignore[import-untyped]

from relay.domain.acks import Acknowledgement
from relay.domain.alerts import Alert
from relay.domain.codec import alert_to_dict
from relay.store import PostgresStore, SqliteStore, Store
from relay.store.postgres import schema as pg_schema
from relay.store.rows import compact_json
from relay.store.sqlite import migrations as sqlite_migrations
from tests import store_backends
from tests.store_backends import Backend
from tests.test_store_alerts import alert_cycle, make_alert, make_window_alert, notify
from tests.test_store_sqlite import T0

backend, store = store_backends.backend, store_backends.store


async def test_an_alert_is_acknowledged_once_and_the_first_one_stays(store: Store) -> None:
    alert = make_alert("exec-ack")
    await store.commit_cycle(alert_cycle([alert], notify(alert)))
    before = await store.get_alert(alert.id)
    assert before is not None
    assert before.acknowledgement is None

    at = T0 + timedelta(minutes=2)
    assert await store.acknowledge_alert(alert.id, by="alice (slack:U1)", at=at, comment="on it")
    assert not await store.acknowledge_alert(alert.id, by="bob (slack:U2)", at=at + timedelta(1))
    stored = await store.get_alert(alert.id)
    assert stored is not None
    assert stored.acknowledgement == Acknowledgement(by="alice (slack:U1)", at=at, comment="on it")
    [listed] = (await store.list_alerts()).alerts
    assert listed.acknowledgement == stored.acknowledgement


async def test_an_unknown_alert_cannot_be_acknowledged(store: Store) -> None:
    assert not await store.acknowledge_alert("alert_nope", by="admin", at=T0)
    assert await store.acknowledged_among(["alert_nope"]) == set()


async def test_acknowledged_among_names_only_acknowledged_alerts(store: Store) -> None:
    alerts = [make_alert(f"exec-{n}") for n in range(3)]
    await store.commit_cycle(alert_cycle(alerts))
    await store.acknowledge_alert(alerts[1].id, by="admin", at=T0)
    ids = [a.id for a in alerts] + ["alert_unknown"]
    assert await store.acknowledged_among(ids) == {alerts[1].id}
    assert await store.acknowledged_among([]) == set()


async def test_a_windowed_alert_keeps_its_acknowledgement_through_updates(
    store: Store, backend: Backend
) -> None:
    firing = make_window_alert(value=0.4)
    await store.commit_cycle(alert_cycle([firing], notify(firing)))
    await store.acknowledge_alert(firing.id, by="admin", at=T0 + timedelta(minutes=1))
    later = T0 + timedelta(minutes=30)
    await store.commit_cycle(alert_cycle([replace(firing, value=0.7)], at=later))
    stored = await store.get_alert(firing.id)
    assert stored is not None
    assert stored.alert.value == 0.7
    assert stored.acknowledgement is not None
    assert stored.acknowledgement.by == "admin"
    # The next episode is another alert: not acknowledged.
    second = make_window_alert(episode=2, at=later)
    await store.commit_cycle(alert_cycle([second], at=later))
    assert await store.acknowledged_among([firing.id, second.id]) == {firing.id}

    # A reopened store (a restart, another replica) reads the same.
    async with backend.new_store() as reopened:
        again = await reopened.get_alert(firing.id)
    assert again is not None
    assert again.acknowledgement == stored.acknowledgement


async def test_a_version_7_sqlite_file_upgrades_and_takes_acknowledgements(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    async with aiosqlite.connect(path) as conn:
        assert await sqlite_migrations.migrate(conn, location=str(path), target=7) == (0, 7)
    alert = make_alert("exec-old")
    # Written by the relay at version 7 (no acknowledgement columns yet).
    async with aiosqlite.connect(path) as conn:
        await conn.execute(
            "INSERT INTO alerts (id, source, rule, state, windowed, created_at, updated_at, body)"
            " VALUES (?, 'prod', 'execution-failed', 'firing', 0, ?, ?, ?)",
            (alert.id, "2026-03-01T12:00:00.000000Z", "2026-03-01T12:00:00.000000Z", _body(alert)),
        )
        await conn.commit()
    async with SqliteStore(path) as upgraded:
        stored = await upgraded.get_alert(alert.id)
        assert stored is not None
        assert stored.acknowledgement is None
        assert await upgraded.acknowledge_alert(alert.id, by="admin", at=T0)
    async with aiosqlite.connect(path) as conn:
        assert await sqlite_migrations.schema_version(conn) == sqlite_migrations.LATEST_VERSION


async def test_a_version_4_postgres_schema_upgrades_and_takes_acknowledgements() -> None:
    async with store_backends.fresh_pg_schema() as url:
        conn = await asyncpg.connect(url)
        try:
            assert await pg_schema.migrate(conn, location="test", target=4) == (0, 4)
            alert = make_alert("exec-old")
            await conn.execute(
                "INSERT INTO alerts (id, source, rule, state, windowed, created_at, updated_at,"
                " body) VALUES ($1, 'prod', 'execution-failed', 'firing', false, $2, $2, $3)",
                alert.id,
                T0,
                _body(alert),
            )
        finally:
            await conn.close()
        async with PostgresStore(url, max_size=2) as upgraded:
            stored = await upgraded.get_alert(alert.id)
            assert stored is not None
            assert stored.acknowledgement is None
            assert await upgraded.acknowledge_alert(alert.id, by="admin", at=T0)
            assert await upgraded.acknowledged_among([alert.id]) == {alert.id}


def _body(alert: Alert) -> str:
    return compact_json(alert_to_dict(alert))
