"""Regenerate tests/data/store-v2.db: a store at schema version 2 holding a few rows.

    .venv/bin/python tests/data/make_store_v2.py

The file stands for a database left behind by the release before alerts: migrations 1
and 2 are applied and the rows are written as that release wrote them (literal SQL
values, not through today's encoder): executions without origin_type/is_agentic, a
transition with its snapshot, cursors. tests/test_store_migrations.py opens a copy of
the committed file, so regenerate it only if migration 1 or 2 itself was wrong; never
edit it by hand.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiosqlite

from relay.store.sqlite.migrations import migrate

TARGET = Path(__file__).with_name("store-v2.db")

# (source, id, status, credits_used, kind, responder_id, parent_id, agent_id, workflow_id,
#  created_at, updated_at, started_at, ended_at, is_purged, last_seen_at, reported_statuses)
STATES = [
    (
        "prod", "exec-running", "running", 12.5, "agent", "resp-1", None, "agent-1", None,
        "2026-03-01T12:00:00.000000Z", "2026-03-01T12:05:00.250000Z",
        "2026-03-01T12:00:01.000000Z", None, 0, "2026-03-01T12:05:30.000000Z", '["running"]',
    ),
    (
        "prod", "exec-failed", "failed", 3.0, "workflow", "resp-2", None, None, "wf-1",
        "2026-03-01T12:00:00.000000Z", "2026-03-01T12:02:00.000000Z",
        "2026-03-01T12:00:00.000000Z", "2026-03-01T12:02:00.000000Z", 0,
        "2026-03-01T12:05:30.000000Z", '["failed","running"]',
    ),
    (
        "staging", "exec-done", "completed", 0.5, "squad", "resp-9", None, "agent-9", None,
        "2026-03-01T11:00:00.000000Z", "2026-03-01T11:01:00.000000Z",
        "2026-03-01T11:00:00.000000Z", "2026-03-01T11:01:00.000000Z", 0,
        "2026-03-01T12:04:30.000000Z", '["completed"]',
    ),
]  # fmt: skip
SNAPSHOT = (
    '{"id":"exec-failed","workspaceId":"ws-1","responderId":"resp-2","parentId":null,'
    '"status":"failed","isAgentic":false,"isPurged":false,"creditsUsed":3.0,'
    '"createdAt":"2026-03-01T12:00:00Z","updatedAt":"2026-03-01T12:02:00Z",'
    '"startedAt":"2026-03-01T12:00:00Z","endedAt":"2026-03-01T12:02:00Z",'
    '"detail":{"output":{"error":"HTTP node got 500"},"type":"workflow-execution",'
    '"workflowId":"wf-1","workflowImplementationId":"impl-1","events":[{"id":'
    '"exec-failed-ev1","label":"First step","status":"failed","creditsUsed":3.0,'
    '"startedAt":"2026-03-01T12:00:00Z","endedAt":"2026-03-01T12:02:00Z","output":'
    '{"error":"HTTP node got 500"},"type":"workflow-node","childExecutionId":null,'
    '"nodeType":"http","workflowNodeId":"node-1"}],"origin":{"type":"webhook-request",'
    '"workflowTriggerId":"trigger-1"}}}'
)
# (key, source, execution_id, kind, from_status, to_status, credits_before, credits_after,
#  observed_at, alertable, snapshot)
TRANSITIONS = [
    (
        "prod:exec-failed:status:failed", "prod", "exec-failed", "status", "running", "failed",
        1.0, 3.0, "2026-03-01T12:02:15.000000Z", 1, SNAPSHOT,
    ),
]  # fmt: skip
CURSORS = [
    ("prod", 1, "2026-03-01T12:05:30.000000Z"),
    ("staging", 1, "2026-03-01T12:04:30.000000Z"),
]


async def make(path: Path) -> None:
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await migrate(conn, location=str(path), target=2)
        marks = ", ".join("?" for _ in STATES[0])
        await conn.execute("BEGIN")
        await conn.executemany(f"INSERT INTO executions VALUES ({marks})", STATES)
        columns = (
            "key, source, execution_id, kind, from_status, to_status, credits_before, "
            "credits_after, observed_at, alertable, snapshot"
        )
        await conn.executemany(
            f"INSERT INTO transitions ({columns}) VALUES ({', '.join('?' * 11)})", TRANSITIONS
        )
        await conn.executemany("INSERT INTO source_cursors VALUES (?, ?, ?)", CURSORS)
        # A fixed timestamp keeps the file identical from one regeneration to the next.
        await conn.execute("UPDATE schema_migrations SET applied_at = '2026-03-01T00:00:00.000Z'")
        await conn.execute("COMMIT")
        await conn.execute("VACUUM")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET
    target.unlink(missing_ok=True)
    asyncio.run(make(target))
