"""Executions that ended at chosen moments, committed as a poll cycle would: what the
execution statistics tests (store and page) feed the store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from relay.domain.state import SourceCursor, TrackedExecution
from relay.store import CycleResult, Store


def ended(
    n: int,
    *,
    at: datetime,
    duration_s: float = 10.0,
    source: str = "prod",
    responder: str = "resp-1",
    status: str = "completed",
    credits: float = 1.0,
) -> TrackedExecution:
    """Execution `n`, ended at `at` after `duration_s` (status "running": not ended)."""
    started = at - timedelta(seconds=duration_s)
    return TrackedExecution(
        source=source,
        id=f"exec-{n:05d}",
        status=status,
        credits_used=credits,
        kind="agent",
        responder_id=responder,
        parent_id=None,
        agent_id=None,
        workflow_id=None,
        created_at=started,
        updated_at=at,
        started_at=started,
        ended_at=None if status == "running" else at,
        is_purged=False,
        last_seen_at=at,
    )


async def commit_states(store: Store, states: Sequence[TrackedExecution], *, at: datetime) -> None:
    for source in sorted({s.source for s in states}):
        await store.commit_cycle(
            CycleResult(
                source=source,
                states=[s for s in states if s.source == source],
                transitions=[],
                cursor=SourceCursor(source=source, first_poll_done=True, last_success_at=at),
            )
        )
