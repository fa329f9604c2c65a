"""The connection of the SQLite store: lifecycle, transactions and error mapping.

`SqliteStore` is assembled from parts that each own a few tables (`_sqlite_alerts`,
`_sqlite_outbox`, `_sqlite_rules`, and `sqlite` itself for executions, transitions and
cursors); they all run their statements through `SqliteBase._reading` and `_writing`.

Invariants:
- One aiosqlite connection per store; SQLite runs on aiosqlite's thread so the event
  loop never blocks on disk. An `asyncio.Lock` serialises the store's operations, because
  two tasks sharing one connection would otherwise interleave inside a transaction.
- The journal is WAL with `synchronous=FULL`: a commit fsyncs the log before the write
  returns, so neither a `kill -9` nor a power cut loses a committed write. Readers never
  block the writer, and a second process on the same file works (it waits up to
  `busy_timeout_s` for the write lock).
- Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up
  front, so two writers queue instead of deadlocking on a lock upgrade. That queue is
  also what makes a read-then-update (claiming outbox rows) atomic across processes.
- Every `sqlite3.Error` leaves as a `StoreError` that names the file and says what to do.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite
import structlog

from relay.errors import StoreError
from relay.store._sqlite_rows import store_error
from relay.store.migrations import migrate

log = structlog.get_logger("relay.store.sqlite")

# After a checkpoint the WAL file is truncated back to this size, so it stays bounded.
_JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
_WORKER_JOIN_TIMEOUT_S = 5.0


class SqliteBase:
    """Connection, lifecycle and transactions shared by the parts of `SqliteStore`."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

    # --- lifecycle ----------------------------------------------------------------

    async def open(self) -> None:
        async with self._lock:
            if self._conn is not None:
                return
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"sqlite store {self._path}: cannot create directory "
                    f"{self._path.parent} ({exc.strerror}); create it, writable by this "
                    "user, or point store.url elsewhere"
                ) from exc
            pending = aiosqlite.connect(
                self._path, timeout=self._busy_timeout_s, isolation_level=None
            )
            try:
                with self._mapped("open"):
                    conn = await pending
            except BaseException:
                await _join_worker(pending)
                raise
            try:
                with self._mapped("open"):
                    await self._configure(conn)
                    before, after = await migrate(conn, location=str(self._path))
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
        if before != after:
            log.info("store.migrated", path=str(self._path), from_version=before, to=after)

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        mode = await self._enable_wal(conn)
        if mode != "wal":
            raise StoreError(
                f"sqlite store {self._path}: the file cannot use a WAL journal (got "
                f"{mode!r}); put it on a local filesystem, not a network share"
            )
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT_BYTES}")

    async def _enable_wal(self, conn: aiosqlite.Connection) -> str:
        # Turning a new file to WAL needs an exclusive lock, and while another process
        # does the same SQLite refuses at once (SQLITE_BUSY without waiting, to avoid a
        # deadlock). Retry, with a growing pause, for as long as a busy lock may last.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout_s
        pause_s = 0.002
        while True:
            try:
                rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
                if not busy or loop.time() + pause_s > deadline:
                    raise
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.1)
            else:
                return str(rows[0][0]).lower() if rows else ""

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with self._mapped("close"):
                    await conn.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> None:
        async with self._reading("ping") as conn:
            # Reading the schema table touches the file, unlike `SELECT 1`.
            await conn.execute_fetchall("SELECT count(*) FROM schema_migrations")

    # --- plumbing -----------------------------------------------------------------

    def _require_open(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"sqlite store {self._path} is not open; call open() first")
        return self._conn

    @asynccontextmanager
    async def _reading(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            conn = self._require_open()
            with self._mapped(action):
                # Never read another task's unfinished transaction as if it were stored.
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                yield conn

    @asynccontextmanager
    async def _writing(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            conn = self._require_open()
            with self._mapped(action):
                # A transaction left open by a task cancelled mid-way must not swallow
                # the next one.
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    await conn.execute("COMMIT")
                except BaseException:
                    # Shielded: a second cancellation must not leave the transaction open.
                    await asyncio.shield(_rollback_quietly(conn))
                    raise

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self._path, action, exc, self._busy_timeout_s) from exc

    async def _count(self, table: str, source: str | None) -> int:
        where, params = source_filter(source)
        async with self._reading(f"count {table}") as conn:
            rows = list(await conn.execute_fetchall(f"SELECT count(*) FROM {table}{where}", params))
        return int(rows[0][0])


def source_filter(source: str | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if source is None else (" WHERE source = ?", (source,))


async def _join_worker(conn: aiosqlite.Connection) -> None:
    # When connecting fails, aiosqlite stops its worker thread without waiting for it;
    # the thread then reports back to the event loop, and fails if that loop has closed
    # meanwhile (omnilib/aiosqlite#241). Waiting for the thread here closes that window.
    worker = getattr(conn, "_thread", conn)
    if isinstance(worker, threading.Thread) and worker.ident is not None:
        await asyncio.to_thread(worker.join, _WORKER_JOIN_TIMEOUT_S)


async def _rollback_quietly(conn: aiosqlite.Connection) -> None:
    try:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
    except sqlite3.Error:
        # The original error is the one worth reporting; a failed rollback leaves the
        # transaction to be rolled back by the next write or by closing.
        pass
