"""The SQLite store: one file, one replica.

Invariants:
- One aiosqlite connection per store; SQLite runs on aiosqlite's thread so the event
  loop never blocks on disk. An `asyncio.Lock` serialises the store's operations, because
  two tasks sharing one connection would otherwise interleave inside a transaction.
- The journal is WAL with `synchronous=FULL`: a commit fsyncs the log before
  `commit_cycle` returns, so neither a `kill -9` nor a power cut loses a committed
  cycle. Readers never block the writer, and a second process on the same file works
  (it waits up to `busy_timeout_s` for the write lock).
- Every write transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up
  front, so two writers queue instead of deadlocking on a lock upgrade.
- Every `sqlite3.Error` leaves as a `StoreError` that names the file and says what to do.
- How records map to columns lives in `_sqlite_rows`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiosqlite
import structlog

from relay.domain.state import SourceCursor, TrackedExecution
from relay.errors import StoreError
from relay.store._sqlite_rows import (
    STATE_COLUMNS,
    TRANSITION_COLUMNS,
    cursor_from_row,
    cursor_to_row,
    encode_time,
    state_from_row,
    state_to_row,
    store_error,
    transition_from_row,
    transition_to_row,
)
from relay.store.base import CycleResult, PruneResult, StoredTransition
from relay.store.migrations import migrate

__all__ = ["SqliteStore"]

log = structlog.get_logger(__name__)

# SQLite accepts up to 32766 bound parameters a statement; stay far below it.
_IDS_PER_QUERY = 500
# After a checkpoint the WAL file is truncated back to this size, so it stays bounded.
_JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
_WORKER_JOIN_TIMEOUT_S = 5.0

_STATE_SELECT = f"SELECT {', '.join(STATE_COLUMNS)} FROM executions"
_STATE_UPSERT = (
    f"INSERT INTO executions ({', '.join(STATE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in STATE_COLUMNS)}) "
    "ON CONFLICT (source, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[2:])
)

_TRANSITION_SELECT = f"SELECT {', '.join(TRANSITION_COLUMNS)} FROM transitions"
# A known key is ignored, never updated: the first observation of a change is the one
# that was (or will be) alerted on.
_TRANSITION_INSERT = (
    f"INSERT INTO transitions ({', '.join(TRANSITION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in TRANSITION_COLUMNS)}) "
    "ON CONFLICT (key) DO NOTHING"
)

# The expression and the status test match the partial index `executions_prunable`
# word for word, so SQLite can use it.
_PRUNE_STATES = (
    "DELETE FROM executions WHERE status <> 'running' AND coalesce(ended_at, last_seen_at) < ?"
)
_PRUNE_TRANSITIONS = "DELETE FROM transitions WHERE observed_at < ?"
_RUNNING_SELECT = (
    f"{_STATE_SELECT} WHERE source = ? AND status = 'running' ORDER BY last_seen_at, id"
)

_CURSOR_UPSERT = (
    "INSERT INTO source_cursors (source, first_poll_done, last_success_at) VALUES (?, ?, ?) "
    "ON CONFLICT (source) DO UPDATE SET "
    "first_poll_done = excluded.first_poll_done, last_success_at = excluded.last_success_at"
)


class SqliteStore:
    """The `Store` on a SQLite file (see the module docstring for its guarantees)."""

    def __init__(self, path: Path | str, *, busy_timeout_s: float = 5.0) -> None:
        self._path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

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

    # --- reads --------------------------------------------------------------------

    async def get_cursor(self, source: str) -> SourceCursor | None:
        async with self._reading("read the source cursor") as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT source, first_poll_done, last_success_at FROM source_cursors "
                    "WHERE source = ?",
                    (source,),
                )
            )
        if not rows:
            return None
        return cursor_from_row(rows[0])

    async def load_states(self, source: str, ids: Collection[str]) -> dict[str, TrackedExecution]:
        if isinstance(ids, str):
            # A lone id is a Collection[str] too, of its characters: refuse the mistake.
            raise TypeError("load_states takes a collection of ids, not one id")
        wanted = list(dict.fromkeys(ids))
        found: dict[str, TrackedExecution] = {}
        async with self._reading("load execution states") as conn:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                marks = ", ".join("?" for _ in chunk)
                rows = await conn.execute_fetchall(
                    f"{_STATE_SELECT} WHERE source = ? AND id IN ({marks})", (source, *chunk)
                )
                for row in rows:
                    state = state_from_row(row)
                    found[state.id] = state
        return found

    async def running_states(self, source: str) -> list[TrackedExecution]:
        async with self._reading("list running executions") as conn:
            rows = await conn.execute_fetchall(_RUNNING_SELECT, (source,))
        return [state_from_row(row) for row in rows]

    async def recent_transitions(
        self, *, source: str | None = None, limit: int = 100
    ) -> list[StoredTransition]:
        if limit <= 0:
            return []
        where, params = _source_filter(source)
        async with self._reading("list transitions") as conn:
            rows = await conn.execute_fetchall(
                f"{_TRANSITION_SELECT}{where} ORDER BY observed_at DESC, seq DESC LIMIT ?",
                (*params, limit),
            )
        return [transition_from_row(row) for row in rows]

    async def transition_count(self, *, source: str | None = None) -> int:
        return await self._count("transitions", source)

    async def state_count(self, *, source: str | None = None) -> int:
        return await self._count("executions", source)

    async def _count(self, table: str, source: str | None) -> int:
        where, params = _source_filter(source)
        async with self._reading(f"count {table}") as conn:
            rows = list(await conn.execute_fetchall(f"SELECT count(*) FROM {table}{where}", params))
        return int(rows[0][0])

    # --- writes -------------------------------------------------------------------

    async def commit_cycle(self, result: CycleResult) -> None:
        # Encoding (JSON snapshots above all) happens before the lock is taken, so the
        # write transaction holds the file lock only for the statements themselves.
        states = [state_to_row(s) for s in result.states]
        transitions = [transition_to_row(t) for t in result.transitions]
        cursor_row = cursor_to_row(result.cursor)
        async with self._writing("commit a poll cycle") as conn:
            if states:
                await conn.executemany(_STATE_UPSERT, states)
            if transitions:
                await conn.executemany(_TRANSITION_INSERT, transitions)
            # Outbox rows (alerts to deliver) belong here, in this same transaction, so
            # that a state change and the alerts it causes are stored together or not at all.
            await conn.execute(_CURSOR_UPSERT, cursor_row)

    async def prune(self, *, before: datetime) -> PruneResult:
        cutoff = encode_time(before)
        async with self._writing("prune old rows") as conn:
            async with conn.execute(_PRUNE_STATES, (cutoff,)) as cur:
                states_deleted = cur.rowcount
            async with conn.execute(_PRUNE_TRANSITIONS, (cutoff,)) as cur:
                transitions_deleted = cur.rowcount
        return PruneResult(states_deleted=states_deleted, transitions_deleted=transitions_deleted)

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
                    await _rollback_quietly(conn)
                    raise

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


def _source_filter(source: str | None) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if source is None else (" WHERE source = ?", (source,))
