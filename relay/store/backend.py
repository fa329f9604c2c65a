"""What a database backend gives the shared SQL store: a `Dialect` (placeholders,
timestamps, id lists), `Session`s (one transaction each) and a `Backend` (connections,
transactions, lifecycle). `relay.store.sqlite` and `relay.store.postgres` each supply
one of each; `relay.store.sql_store` builds the whole `Store` on top of them.

Invariants:
- Statements name their parameters with markers (`:source`). A dialect renders a
  statement into its own placeholders (`?` for SQLite, `$1` for PostgreSQL) once per
  statement text; a session binds values by marker name, so no statement depends on
  the order in which its parameters are passed. A `::` (a PostgreSQL cast) is no marker.
- A session is one transaction on one connection, opened by `Backend._reading` or
  `Backend._writing`; nothing done through it commits on its own.
- Rows are read by column name (`sqlite3.Row` and `asyncpg.Record` both allow it), never
  by position.
- A write refused because the store cannot take writes (`StoreUnwritable`: disk full,
  read-only) is remembered; `writes_refused` says so, and tries a one-row write to see
  whether it has passed, until one lands. While no refusal is remembered it costs nothing.
- Timestamps go in timezone-aware (a naive one is refused with `ValueError`, before any
  statement runs) and come out in UTC.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, ClassVar, Protocol, Self

import structlog

from relay.clock import as_utc
from relay.durations import utc_iso
from relay.errors import StoreError, StoreUnwritable
from relay.store import sql

log = structlog.get_logger("relay.store")

Params = dict[str, Any]

_MARKER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Row(Protocol):
    """A fetched row: its columns by name."""

    def __getitem__(self, column: str, /) -> Any: ...


def aware_utc(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is refused rather than guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store keeps timezone-aware UTC only")
    return as_utc(value)


def iso_utc(value: datetime) -> str:
    """Fixed-width ISO 8601 UTC text (`2026-01-02T03:04:05.000006Z`): exact to the
    microsecond, and ordered when compared as text."""
    return utc_iso(aware_utc(value), timespec="microseconds")


def from_iso_utc(text: str) -> datetime:
    return as_utc(datetime.fromisoformat(text))


def distinct_ids(ids: Collection[str], *, method: str) -> list[str]:
    """`ids` without duplicates, in order."""
    if isinstance(ids, str):
        # A lone id is a Collection[str] too, of its characters: refuse the mistake.
        raise TypeError(f"{method} takes a collection of ids, not one id")
    return list(dict.fromkeys(ids))


@functools.lru_cache(maxsize=1024)
def _render(statement: str, *, numbered: bool) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if not numbered:
            names.append(name)
            return "?"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _MARKER.sub(placeholder, statement), tuple(names)


class Dialect(ABC):
    """How one database spells what the shared statements leave open."""

    #: `$1, $2` (one number a marker name) rather than `?` (one a marker occurrence).
    numbered_placeholders: ClassVar[bool]
    #: The most ids one statement binds; None when a whole list binds as one array.
    ids_per_statement: ClassVar[int | None]
    #: What locks the rows a select reads until the transaction ends ("" when the
    #: transaction's own lock already covers them, as SQLite's write lock does).
    row_lock: ClassVar[str] = ""

    def render(self, statement: str) -> tuple[str, tuple[str, ...]]:
        """`statement` in this dialect's placeholders, and the marker name of each."""
        return _render(statement, numbered=self.numbered_placeholders)

    @abstractmethod
    def encode_time(self, value: datetime) -> Any:
        """A timestamp as a parameter (`ValueError` when naive)."""

    @abstractmethod
    def decode_time(self, value: Any) -> datetime:
        """A timestamp column read back, in UTC."""

    @abstractmethod
    def any_of(self, column: str, *, marker: str, ids: Sequence[str]) -> tuple[str, Params]:
        """The condition `column` is one of `ids`, and its parameters."""

    @abstractmethod
    def epoch_us(self, column: str) -> str:
        """An SQL expression: the timestamp `column` as whole microseconds since the
        Unix epoch (an exact integer, so buckets split exactly at their edges)."""

    def clean_text(self, text: str) -> str:
        """`text` as the database can store it."""
        return text

    def time_or_none(self, value: Any) -> datetime | None:
        return None if value is None else self.decode_time(value)

    def id_chunks(self, ids: Sequence[str]) -> Iterator[Sequence[str]]:
        """`ids` in slices small enough to bind in one statement."""
        size = self.ids_per_statement or max(len(ids), 1)
        for start in range(0, len(ids), size):
            yield ids[start : start + size]


class Session(ABC):
    """One transaction on one connection. The shared statements run through `fetch`,
    `execute` and `execute_many`; what each database does its own way (bulk alert and
    outbox inserts, exclusive claims) through the other methods."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    async def fetch(self, statement: str, /, **params: Any) -> list[Row]:
        query, names = self.dialect.render(statement)
        return await self._fetch(query, [params[name] for name in names])

    async def fetch_one(self, statement: str, /, **params: Any) -> Row | None:
        rows = await self.fetch(statement, **params)
        return rows[0] if rows else None

    async def execute(self, statement: str, /, **params: Any) -> int:
        """Run `statement`; how many rows it changed."""
        query, names = self.dialect.render(statement)
        return await self._execute(query, [params[name] for name in names])

    async def execute_many(self, statement: str, rows: Sequence[Mapping[str, Any]], /) -> None:
        """Run `statement` once per parameter row (none: nothing runs)."""
        if rows:
            await self._execute_many(*self._bind_many(statement, rows))

    def _bind_many(
        self, statement: str, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[str, list[list[Any]]]:
        """`statement` rendered, and the arguments of each row in its placeholders' order."""
        query, names = self.dialect.render(statement)
        return query, [[row[name] for name in names] for row in rows]

    @abstractmethod
    async def _fetch(self, query: str, args: Sequence[Any]) -> list[Row]: ...

    @abstractmethod
    async def _execute(self, query: str, args: Sequence[Any]) -> int: ...

    @abstractmethod
    async def _execute_many(self, query: str, args: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def store_alerts(self, rows: Sequence[Params]) -> tuple[frozenset[str], frozenset[str]]:
        """Insert new alerts (`relay.store.rows.alert_params`, one per id), update the
        windowed ones already stored and touch the others; return (new ids, ids of
        per-execution alerts that were already stored and so were left as they were)."""

    @abstractmethod
    async def enqueue(self, rows: Sequence[Params]) -> int:
        """Insert outbox rows (`relay.store.rows.outbox_params`), pending and due at their
        `next_attempt_at` (their creation, or their group's message's due time), in the
        order given; a known (id, sink) is left alone. How many were new."""

    @abstractmethod
    async def claim(
        self, *, sink: str, now: Any, lease_end: Any, limit: int, grouped: bool | None = None
    ) -> list[Row]:
        """Lease up to `limit` rows of `sql.DUE_SELECT` until `lease_end`, so no other
        claimer gets them; their columns as they were before the lease. `grouped`:
        route groups' rows only (True), ungrouped ones only (False), or any (None)."""

    @abstractmethod
    async def claim_groups(
        self, *, sink: str, now: Any, lease_end: Any, keys: Sequence[str], limit: int
    ) -> list[Row]:
        """Like `claim`, for up to `limit` more due rows of the groups `keys`
        (`sql.GROUP_DUE_SELECT`): the rest of the groups a claim took some of."""

    @abstractmethod
    async def claim_messages(
        self, *, sink: str, lease_end: Any, message_ids: Sequence[str], limit: int
    ) -> list[Row]:
        """Like `claim`, for up to `limit` more pending rows of the stamped messages
        `message_ids`, due or not, that no claimer holds (`sql.MESSAGE_REST_SELECT`):
        the rest of the messages a claim took some of."""


class Backend(ABC):
    """Connections, transactions and lifecycle of one database: what the shared store
    runs on."""

    dialect: ClassVar[Dialect]
    # Why the last write was refused, until a write lands again (see `writes_refused`).
    _write_refusal: str | None = None

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def _reading(
        self, action: str, *, snapshot: bool = False
    ) -> AbstractAsyncContextManager[Session]:
        """A session to read in; `snapshot`: its statements all see one state of the
        database. Backend failures leave as `StoreError`s naming `action`."""

    @abstractmethod
    def _write_transaction(self, action: str) -> AbstractAsyncContextManager[Session]:
        """A session that commits when the block ends and rolls back when it raises."""

    @asynccontextmanager
    async def _writing(self, action: str) -> AsyncIterator[Session]:
        """`_write_transaction`, remembering a refusal to write (`StoreUnwritable`)."""
        try:
            async with self._write_transaction(action) as session:
                yield session
        except StoreUnwritable as exc:
            if self._write_refusal is None:
                log.warning("store.writes_refused", error=str(exc))
            self._write_refusal = str(exc)
            raise

    async def writes_refused(self) -> str | None:
        """None while the store takes writes; else why the last write was refused. A
        remembered refusal is tested again with a one-row write, and forgotten when it
        lands (a failure of another kind keeps it: nothing was learnt)."""
        if self._write_refusal is None:
            return None
        try:
            async with self._writing("check that the store takes writes") as session:
                await session.execute(sql.WRITE_PROBE)
        except StoreError:
            return self._write_refusal
        log.info("store.writes_accepted")
        self._write_refusal = None
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ping(self) -> None:
        async with self._reading("ping") as session:
            # Reading a table touches the database, unlike `SELECT 1`.
            await session.fetch(sql.PING)

    async def _count(self, table: str, source: str | None) -> int:
        where = "" if source is None else " WHERE source = :source"
        params = {} if source is None else {"source": source}
        async with self._reading(f"count {table}") as session:
            rows = await session.fetch(f"SELECT count(*) AS n FROM {table}{where}", **params)
        return int(rows[0]["n"])
