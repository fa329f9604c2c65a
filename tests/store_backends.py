"""Both Store backends for the tests: scenarios that take the `store` fixture run once on
SQLite and once on PostgreSQL, which must behave the same.

A test module opts in by binding the fixtures at module level (an assignment, not an
import, so that the test functions' arguments do not shadow an import):

    backend, store = store_backends.backend, store_backends.store

SQLite gets a file in the test's tmp_path. PostgreSQL is RELAY_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/test); each test gets a schema of its own
(selected with `?search_path=` in the store's URL), dropped afterwards. Without a
reachable server the PostgreSQL tests skip, except in CI (`CI=true`), where they fail:
CI provides one.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]
import pytest

from relay.store import PostgresStore, SqliteStore, Store
from relay.store.postgres import redact_url
from tests.tools import unavailable

PG_URL = os.environ.get("RELAY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgres")
_unreachable: list[str] = []


def _skip_or_fail(reason: str) -> NoReturn:
    unavailable(reason, required="a PostgreSQL server is required")


async def pg_admin() -> Any:
    """A connection to PG_URL; skips (fails in CI) the test when there is no server."""
    if _unreachable:
        _skip_or_fail(_unreachable[0])
    try:
        return await asyncpg.connect(PG_URL, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = (
            f"PostgreSQL at {redact_url(PG_URL)} is unreachable ({type(exc).__name__}: {exc}); "
            "start one or point RELAY_TEST_POSTGRES_URL at one"
        )
        _unreachable.append(reason)
        _skip_or_fail(reason)


@asynccontextmanager
async def fresh_pg_schema() -> AsyncIterator[str]:
    """A store URL whose search_path is a fresh schema, dropped on exit."""
    admin = await pg_admin()
    schema = f"relay_test_{uuid.uuid4().hex[:16]}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A store URL whose search_path is a fresh schema, dropped after the test."""
    async with fresh_pg_schema() as url:
        yield url


@dataclass(frozen=True)
class Backend:
    """Where one test's store lives: a SQLite file or a PostgreSQL URL (with its schema)."""

    name: str
    location: str

    def new_store(self) -> Store:
        """Another (unopened) store on the same database."""
        if self.name == "sqlite":
            return SqliteStore(self.location)
        return PostgresStore(self.location, max_size=3)

    async def execute(self, statement: str) -> None:
        """Run one statement (no parameters) on the tables, behind the store's back: to
        write rows as an older relay did."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.location)
            try:
                conn.execute(statement)
                conn.commit()
            finally:
                conn.close()
            return
        pg = await asyncpg.connect(self.location)
        try:
            await pg.execute(statement)
        finally:
            await pg.close()

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        """Every row of `query` (no parameters), read from the tables as tuples."""
        if self.name == "sqlite":
            conn = sqlite3.connect(self.location)
            try:
                return [tuple(r) for r in conn.execute(query)]
            finally:
                conn.close()
        pg = await asyncpg.connect(self.location)
        try:
            return [tuple(r) for r in await pg.fetch(query)]
        finally:
            await pg.close()

    async def outbox_rows(self) -> list[tuple[str, str, str]]:
        """(id, sink, status) of every outbox row, in enqueue order, read from the tables."""
        rows = await self.rows("SELECT id, sink, status FROM outbox ORDER BY seq")
        return [(r[0], r[1], r[2]) for r in rows]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", str(tmp_path / "relay.db"))
        return
    async with fresh_pg_schema() as url:
        yield Backend("postgres", url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    async with backend.new_store() as opened:
        yield opened
