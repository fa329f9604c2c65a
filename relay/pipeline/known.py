"""What this process knows the store holds for recently seen executions, so that a read
of a page of known history asks the store nothing.

Invariants:
- An entry is what the store holds: markers loaded from it, absence (None) that it
  reported, or a state this process committed. Nothing from a cycle that did not commit
  is kept.
- Valid only while this process is the one polling the source: the engine forgets it
  all when another replica may have polled, or a cycle failed.
- Bounded: beyond `capacity` the least recently stored tenth goes (in one go, not one
  by one), and is asked of the store again when seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice

from relay.domain.detect import ChangeMarkers

DEFAULT_CAPACITY = 20_000


class KnownMarkers:
    """Execution id -> the change markers the store holds for it (None: not stored)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._by_id: dict[str, ChangeMarkers | None] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def split(self, ids: Iterable[str]) -> tuple[dict[str, ChangeMarkers], list[str]]:
        """The markers known for `ids` (stored ones only), and the ids never asked."""
        known: dict[str, ChangeMarkers] = {}
        unknown: list[str] = []
        for execution_id in ids:
            if execution_id not in self._by_id:
                unknown.append(execution_id)
            elif (markers := self._by_id[execution_id]) is not None:
                known[execution_id] = markers
        return known, unknown

    def store(self, asked: Iterable[str], found: Mapping[str, ChangeMarkers]) -> None:
        """What the store answered for `asked` (those not in `found` it does not hold), or
        what a commit wrote (`asked` = the ids of `found`)."""
        for execution_id in asked:
            self._by_id.pop(execution_id, None)  # re-inserted last: the most recent
            self._by_id[execution_id] = found.get(execution_id)
        if len(self._by_id) > self._capacity:
            drop = len(self._by_id) - self._capacity * 9 // 10
            for execution_id in list(islice(self._by_id, drop)):
                del self._by_id[execution_id]

    def clear(self) -> None:
        self._by_id.clear()
