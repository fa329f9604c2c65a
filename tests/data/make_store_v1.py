"""Regenerate tests/data/store-v1.db: a store at schema version 1 holding a few rows.

    .venv/bin/python tests/data/make_store_v1.py

The file stands for a database left behind by the first release: only migration 1 is
applied and the rows are written as that release wrote them (literal SQL values, not
through today's encoder). tests/test_store_migrations.py opens a copy of the committed
file, so regenerate it only if migration 1 itself was wrong; never edit it by hand.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiosqlite

from relay.store.sqlite.migrations import migrate

TARGET = Path(__file__).with_name("store-v1.db")

# (source, id, status, credits_used, kind, responder_id, parent_id, agent_id, workflow_id,
#  created_at, updated_at, started_at, ended_at, is_purged, last_seen_at, reported_statuses)
STATES = [
    (
        "prod", "exec-running", "running", 12.5, "agent", "resp-1", None, "agent-1", None,
        "2026-03-01T10:00:00.000000Z", "2026-03-01T10:05:00.250000Z",
        "2026-03-01T10:00:01.000000Z", None, 0, "2026-03-01T10:05:30.000000Z", '["running"]',
    ),
    (
        "prod", "exec-failed", "failed", 3.0, "workflow", "resp-2", None, None, "wf-1",
        "2026-03-01T09:00:00.000000Z", "2026-03-01T09:02:00.000000Z",
        "2026-03-01T09:00:00.500000Z", "2026-03-01T09:02:00.000000Z", 0,
        "2026-03-01T10:05:30.000000Z", '["failed", "running"]',
    ),
    (
        "prod", "exec-child", "completed", 0.75, "squad", "resp-1", "exec-running", "agent-2",
        None, "2026-03-01T10:01:00.000000Z", "2026-03-01T10:03:00.000000Z",
        "2026-03-01T10:01:00.000000Z", "2026-03-01T10:03:00.000000Z", 1,
        "2026-03-01T10:05:30.000000Z", '["completed"]',
    ),
    (
        "staging", "exec-running", "running", 0.0, "agent", "resp-9", None, "agent-9", None,
        "2026-03-01T10:04:00.000000Z", "2026-03-01T10:04:00.000000Z",
        "2026-03-01T10:04:00.000000Z", None, 0, "2026-03-01T10:04:30.000000Z", '["running"]',
    ),
]  # fmt: skip
CURSORS = [
    ("prod", 1, "2026-03-01T10:05:30.000000Z"),
    ("staging", 0, None),
]


async def make(path: Path) -> None:
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await migrate(conn, location=str(path), target=1)
        marks = ", ".join("?" for _ in STATES[0])
        await conn.execute("BEGIN")
        await conn.executemany(f"INSERT INTO executions VALUES ({marks})", STATES)
        await conn.executemany("INSERT INTO source_cursors VALUES (?, ?, ?)", CURSORS)
        # A fixed timestamp keeps the file identical from one regeneration to the next.
        await conn.execute("UPDATE schema_migrations SET applied_at = '2026-03-01T00:00:00.000Z'")
        await conn.execute("COMMIT")
        await conn.execute("VACUUM")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    target.unlink(missing_ok=True)
    asyncio.run(make(target))
