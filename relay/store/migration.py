"""What the versioned schemas of both backends have in common: a migration, and the
rules for choosing the ones to apply. Each backend keeps its own list and numbering
(`relay.store.sqlite.migrations`, `relay.store.postgres.schema`) and applies them in
one transaction of its own.

Invariants:
- A list of migrations is append-only: a released migration is never edited, a change
  is a new migration with the next version. Versions start at 1 and have no gaps.
- A database at a version newer than the code knows is refused, never touched.
- So is one whose `schema_migrations` names a version differently from the code (an
  unreleased build numbered its migrations otherwise): applying the rest would skip
  or repeat schema changes, so the error names the version and both names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    migrations: Sequence[Migration], *, applied: Mapping[int, str], goal: int, store: str
) -> list[Migration]:
    """The migrations that bring a database from its version (the highest of `applied`,
    version -> name as `schema_migrations` records them) to `goal`. `store` names the
    database in the errors (see the module invariants)."""
    latest = migrations[-1].version
    current = max(applied, default=0)
    if current > latest:
        raise StoreError(
            f"{store} has schema version {current}, written by a newer zaia-relay (this "
            f"one knows up to {latest}); upgrade zaia-relay or point store.url elsewhere"
        )
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.name:
            raise StoreError(
                f"{store} has schema version {migration.version} recorded as "
                f"{recorded!r}, but this zaia-relay's version {migration.version} is "
                f"{migration.name!r}: the database was made by a build that numbered its "
                "migrations differently; restore it from a backup made by a released "
                "zaia-relay, or point store.url at a new database"
            )
    return [m for m in migrations if current < m.version <= goal]
