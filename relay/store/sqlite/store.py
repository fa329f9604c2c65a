"""The SQLite store: one file, one replica. Its connection, lifecycle, transactions and
error mapping; what it stores and how is the shared `relay.store.sql_store.SqlStore`'s,
in the SQLite dialect (`relay.store.sqlite.dialect`).

Invariants:
- One aiosqlite connection per store for its writes and ordinary reads; SQLite runs on
  aiosqlite's thread so the event loop never blocks on disk. An `asyncio.Lock`
  serialises the store's operations, because two tasks sharing one connection would
  otherwise interleave inside a transaction.
- Snapshot reads (`_reading(snapshot=True)`: the status page's statistics, alert lists
  and outbox counts) run on read-only connections (`mode=ro`) of their own, one read
  transaction each, one read per connection at a time, at most `_READERS` at once: in
  WAL a reader neither waits for the writer nor holds it up, so a half-second statistics
  read stalls no commit, no claim, and no other page's read. A read sees every write
  committed before it began. Read connections are opened on first need, after the
  writer's (which migrates the file), kept for the next read, and closed with the store
  (after the reads under way); a reopened store opens new ones.
- The journal is WAL with `synchronous=FULL`: a commit fsyncs the log before the write
  returns, so neither a `kill -9` nor a power cut loses a committed write. Readers never
  block the writer, and a second process on the same file works (it waits up to
  `busy_timeout_s` for the write lock).
- Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up
  front, so two writers queue instead of deadlocking on a lock upgrade. That queue is
  also what makes a read-then-update (claiming outbox rows) atomic across processes.
- Every `sqlite3.Error` leaves as a `StoreError` that names the file and says what to do
  (`relay.store.sqlite.errors`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import aiosqlite
import structlog

from relay.errors import StoreError
from relay.store import sql
from relay.store.backend import Dialect
from relay.store.sql_store import SqlStore
from relay.store.sqlite.dialect import SQLITE, SqliteSession
from relay.store.sqlite.errors import store_error
from relay.store.sqlite.migrations import migrate

if TYPE_CHECKING:
    from relay.store.base import Store

log = structlog.get_logger("relay.store.sqlite")

# After a checkpoint the WAL file is truncated back to this size, so it stays bounded.
_JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
_WORKER_JOIN_TIMEOUT_S = 5.0
# Snapshot reads at once: a status render's few reads beside a statistics re-read.
_READERS = 4


class SqliteStore(SqlStore):
    """The `Store` on a SQLite file (see the module docstrings for its guarantees)."""

    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        # The read-only connections of snapshot reads (all, and those free), opened on
        # first need.
        self._readers: list[aiosqlite.Connection] = []
        self._idle_readers: list[aiosqlite.Connection] = []
        self._reader_slots = asyncio.Semaphore(_READERS)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

    @property
    def path(self) -> Path:
        return self._path

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
            conn = await self._connect(self._path, action="open")
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

    async def _connect(
        self, target: Path | str, *, action: str, uri: bool = False
    ) -> aiosqlite.Connection:
        pending = aiosqlite.connect(
            target, timeout=self._busy_timeout_s, isolation_level=None, uri=uri
        )
        try:
            with self._mapped(action):
                return await pending
        except BaseException:
            await _join_worker(pending)
            raise

    async def _take_reader(self) -> aiosqlite.Connection:
        """A free read-only connection, or a new one (the caller holds a reader slot)."""
        self._require_open()
        if self._idle_readers:
            return self._idle_readers.pop()
        # A URI, so that `mode=ro` applies; `as_uri` percent-encodes `?`, `#` and `%`.
        uri = f"{self._path.absolute().as_uri()}?mode=ro"
        reader = await self._connect(uri, action="open a read connection", uri=True)
        # Rows are read by column name (`relay.store.rows`).
        reader.row_factory = sqlite3.Row
        self._readers.append(reader)
        return reader

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        mode = await self._enable_wal(conn)
        if mode != "wal":
            raise StoreError(
                f"sqlite store {self._path}: the file cannot use a WAL journal (got "
                f"{mode!r}); put it on a local filesystem, not a network share"
            )
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT_BYTES}")
        # Rows are read by column name (`relay.store.rows`).
        conn.row_factory = sqlite3.Row

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
            # From here a new read finds the store closed; every slot taken, the reads
            # under way have ended (snapshot reads never take `_lock`: no deadlock).
            conn, self._conn = self._conn, None
            for _ in range(_READERS):
                await self._reader_slots.acquire()
            try:
                readers, self._readers, self._idle_readers = self._readers, [], []
                with self._mapped("close"):
                    for reader in readers:
                        await reader.close()
                    if conn is not None:
                        await conn.close()
            finally:
                for _ in range(_READERS):
                    self._reader_slots.release()

    async def release_own_leases(self, *, now: datetime) -> int:
        async with self._writing("release the leases a previous process left") as session:
            return await session.execute(sql.RELEASE_CLAIMS, now=self.dialect.encode_time(now))

    async def try_lead(self, source: str) -> bool:
        # One replica per SQLite file (the Helm chart enforces it): it always leads.
        del source
        return True

    # --- transactions -------------------------------------------------------------

    @asynccontextmanager
    async def _reading(
        self, action: str, *, snapshot: bool = False
    ) -> AsyncIterator[SqliteSession]:
        if snapshot:
            async with self._snapshot_reading(action) as session:
                yield session
            return
        # Every read here is a snapshot already: the lock keeps writers of this store out.
        async with self._lock:
            conn = self._require_open()
            with self._mapped(action):
                # Never read another task's unfinished transaction as if it were stored.
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                yield SqliteSession(conn)

    @asynccontextmanager
    async def _snapshot_reading(self, action: str) -> AsyncIterator[SqliteSession]:
        # Closed or closing: say so now rather than wait for a slot that close holds.
        self._require_open()
        async with self._reader_slots:
            with self._mapped(action):
                conn = await self._take_reader()
                try:
                    # One read transaction: every statement sees the state of its first
                    # read.
                    await conn.execute("BEGIN")
                    yield SqliteSession(conn)
                finally:
                    # Shielded: a cancelled read must not keep its snapshot (and the WAL
                    # it pins) open.
                    await asyncio.shield(_rollback_quietly(conn))
                    self._idle_readers.append(conn)

    @asynccontextmanager
    async def _write_transaction(self, action: str) -> AsyncIterator[SqliteSession]:
        async with self._lock:
            conn = self._require_open()
            with self._mapped(action):
                # A transaction left open by a task cancelled mid-way must not swallow
                # the next one.
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield SqliteSession(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    # Shielded: a second cancellation must not leave the transaction open.
                    await asyncio.shield(_rollback_quietly(conn))
                    raise

    def _require_open(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError(f"sqlite store {self._path} is not open; call open() first")
        return self._conn

    @contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self._path, action, exc, self._busy_timeout_s) from exc


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


if TYPE_CHECKING:

    def _conforms(store: SqliteStore) -> Store:
        # mypy checks here that `SqliteStore` keeps the whole `Store` protocol.
        return store
