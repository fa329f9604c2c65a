"""What the versioned schemas of both backends have in common: a migration, and the
rules for choosing the ones to apply. Each backend keeps its own list and numbering
(`relay.store.sqlite.migrations`, `relay.store.postgres.schema`) and applies them in
one transaction of its own.

Invariants:
- A list of migrations is append-only: a released migration is never edited, a change
  is a new migration with the next version. Versions start at 1 and have no gaps.
- A database at a version newer than the code knows is refused, never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from relay.errors import StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def goal_version(migrations: Sequence[Migration], target: int | None) -> int:
    """The version to migrate to: `target`, or the latest; `ValueError` when unknown."""
    latest = migrations[-1].version
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise ValueError(f"target version {goal} is not between 0 and {latest}")
    return goal


def to_apply(
    migrations: Sequence[Migration], *, current: int, goal: int, store: str
) -> list[Migration]:
    """The migrations that bring a database from `current` to `goal`. `store` names it
    in the error when `current` is newer than every migration known here."""
    latest = migrations[-1].version
    if current > latest:
        raise StoreError(
            f"{store} has schema version {current}, written by a newer zaia-relay (this "
            f"one knows up to {latest}); upgrade zaia-relay or point store.url elsewhere"
        )
    return [m for m in migrations if current < m.version <= goal]
