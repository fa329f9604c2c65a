"""Compact execution records and the ordered index the list endpoint pages through.

Invariants:
- A record holds only what cannot be derived: the JSON payload (events, inputs, ids of
  steps) is rebuilt from `seed` and the record's fields, so 100k records stay small.
- `version` grows on every change to what the API would return for the record; caches
  key on it.
- The index holds each live record exactly once under its current key, ascending; the
  API's newest-first order is the index read backwards. Keys are `(time_ms, tick)` with a
  unique `tick`, so ties in time are broken stably and entries never compare records.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from relay.sim.catalog import ExecutionKind, Responder


@dataclass(slots=True, eq=False)
class ChildLink:
    """A step of a parent that started a child execution (a `childExecutionId` event).

    `frozen_status` is the child's status as the parent last reported it, fixed when the
    parent ends (or the child is deleted); while the parent runs, the event follows the
    child's live status.
    """

    child_id: str
    started_ms: int
    frozen_status: str | None = None


@dataclass(slots=True, eq=False)
class ExecRecord:
    id: str
    seq: int
    kind: ExecutionKind
    status: str
    responder: Responder
    parent_id: str | None
    credits: float
    created_ms: int
    updated_ms: int
    ended_ms: int | None
    is_agentic: bool
    origin_type: str
    origin_ref: str
    seed: int
    is_purged: bool = False
    version: int = 0
    tick: int = 0
    children: list[ChildLink] | None = None
    error: tuple[str, str] | None = None
    failed_child_id: str | None = None

    @property
    def started_ms(self) -> int:
        return self.created_ms

    @property
    def responder_id(self) -> str:
        return self.responder.responder_id


IndexEntry = tuple[int, int, ExecRecord]


class OrderIndex:
    """Records sorted by one timestamp, overall and per responder."""

    def __init__(self) -> None:
        self._all: list[IndexEntry] = []
        self._by_responder: dict[str, list[IndexEntry]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def add(self, entry: IndexEntry) -> None:
        # New executions are the newest almost always: appending is the fast path.
        for entries in (self._all, self._by_responder.setdefault(entry[2].responder_id, [])):
            if not entries or entries[-1] < entry:
                entries.append(entry)
            else:
                insort(entries, entry)

    def remove(self, entry: IndexEntry) -> None:
        for entries in (self._all, self._by_responder[entry[2].responder_id]):
            at = bisect_left(entries, entry)
            if at >= len(entries) or entries[at][2] is not entry[2]:
                raise KeyError(entry[2].id)
            del entries[at]

    def bulk_add(self, entries: Iterable[IndexEntry]) -> None:
        added = list(entries)
        self._all.extend(added)
        self._all.sort()
        touched: set[str] = set()
        for entry in added:
            responder_id = entry[2].responder_id
            self._by_responder.setdefault(responder_id, []).append(entry)
            touched.add(responder_id)
        for responder_id in touched:
            self._by_responder[responder_id].sort()

    def newest_first(self, responder_ids: Sequence[str] = ()) -> Iterator[ExecRecord]:
        if not responder_ids:
            return (entry[2] for entry in reversed(self._all))
        lists = [self._by_responder.get(r, []) for r in dict.fromkeys(responder_ids)]
        if len(lists) == 1:
            return (entry[2] for entry in reversed(lists[0]))
        merged = heapq.merge(*(reversed(entries) for entries in lists), reverse=True)
        return (entry[2] for entry in merged)

    def page(
        self, *, offset: int, limit: int, responder_ids: Sequence[str] = ()
    ) -> list[ExecRecord]:
        """`limit` records after the newest `offset`, newest first.

        Unfiltered and single-responder pages are slices (O(limit)); several responders
        merge lazily (O(offset + limit)), which is cheap for the first pages a poller reads.
        """
        if len(set(responder_ids)) <= 1:
            entries = self._by_responder.get(responder_ids[0], []) if responder_ids else self._all
            end = len(entries) - offset
            if end <= 0:
                return []
            return [entry[2] for entry in reversed(entries[max(0, end - limit) : end])]
        return list(islice(self.newest_first(responder_ids), offset, offset + limit))
