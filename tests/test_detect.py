"""Table tests of `relay.domain.detect`: stored state + observation -> state and transitions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from relay.domain.detect import (
    VANISHED_STATUS,
    FirstSeenPolicy,
    is_live,
    is_unchanged,
    observe,
    vanished,
)
from relay.domain.models import Execution
from relay.domain.state import TrackedExecution

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = "prod"
EXEC_ID = "0b0c7a52-6f1e-4d0e-9a51-3f8e2a1c0001"
ALERT = FirstSeenPolicy(alertable=True)
BASELINE = FirstSeenPolicy(alertable=False)
BACKFILL_1H = FirstSeenPolicy(alertable=False, backfill_window=timedelta(hours=1))


def execution(
    *,
    status: str = "running",
    credits: float = 0.0,
    updated: int = 0,
    ended: int | None = None,
    purged: bool = False,
    execution_id: str = EXEC_ID,
) -> Execution:
    """An agent execution as the API sends it; times are minutes after T0."""
    raw: dict[str, Any] = {
        "id": execution_id,
        "workspaceId": "ws-1",
        "responderId": "responder-1",
        "parentId": None,
        "status": status,
        "isAgentic": False,
        "isPurged": purged,
        "creditsUsed": credits,
        "createdAt": T0.isoformat(),
        "updatedAt": (T0 + timedelta(minutes=updated)).isoformat(),
        "startedAt": T0.isoformat(),
        "endedAt": None if ended is None else (T0 + timedelta(minutes=ended)).isoformat(),
        "detail": {
            "type": "agent-execution",
            "agentId": "agent-1",
            "events": [],
            "origin": {"type": "api", "apiKeyId": "key-1"},
            "input": {},
            "output": None,
        },
    }
    return Execution.model_validate(raw)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stored(
    exec_: Execution, *, seen: int = 0, reported: frozenset[str] | None = None
) -> TrackedExecution:
    state = TrackedExecution.from_execution(exec_, source=SOURCE, now=at(seen))
    return state if reported is None else replace(state, reported_statuses=reported)


@dataclass(frozen=True)
class Case:
    previous: TrackedExecution | None
    observed: Execution
    # (kind, from, to, credits_before, credits_after, alertable) per transition
    expected: tuple[tuple[str, str, str, float, float, bool], ...]
    status: str
    reported: frozenset[str]
    policy: FirstSeenPolicy = ALERT
    now: int = 10
    stale: bool = False


RUNNING_5 = execution(status="running", credits=5, updated=1)

CASES = {
    "unknown->running": Case(
        None,
        execution(status="running", credits=2, updated=1),
        (("status", "unknown", "running", 0.0, 2.0, True),),
        "running",
        frozenset({"running"}),
    ),
    "unknown->failed": Case(
        None,
        execution(status="failed", credits=7, updated=2, ended=2),
        (("status", "unknown", "failed", 0.0, 7.0, True),),
        "failed",
        frozenset({"failed"}),
    ),
    "running->failed": Case(
        stored(RUNNING_5),
        execution(status="failed", credits=6, updated=3, ended=3),
        (("status", "running", "failed", 5.0, 6.0, True),),
        "failed",
        frozenset({"running", "failed"}),
    ),
    "running->completed carries final credits": Case(
        stored(RUNNING_5),
        execution(status="completed", credits=42.5, updated=4, ended=4),
        (("status", "running", "completed", 5.0, 42.5, True),),
        "completed",
        frozenset({"running", "completed"}),
    ),
    "running->cancelled": Case(
        stored(RUNNING_5),
        execution(status="cancelled", credits=5, updated=4, ended=4),
        (("status", "running", "cancelled", 5.0, 5.0, True),),
        "cancelled",
        frozenset({"running", "cancelled"}),
    ),
    "credits grew while running": Case(
        stored(RUNNING_5),
        execution(status="running", credits=9, updated=2),
        (("credits", "running", "running", 5.0, 9.0, True),),
        "running",
        frozenset({"running"}),
    ),
    "credits shrank while running: no transition": Case(
        stored(RUNNING_5),
        execution(status="running", credits=4, updated=2),
        (),
        "running",
        frozenset({"running"}),
    ),
    "credits grew after the end: no transition": Case(
        stored(execution(status="failed", credits=5, updated=1, ended=1)),
        execution(status="failed", credits=8, updated=2, ended=1),
        (),
        "failed",
        frozenset({"failed"}),
    ),
    "no change": Case(stored(RUNNING_5), RUNNING_5, (), "running", frozenset({"running"})),
    "stale observation ignored": Case(
        stored(execution(status="failed", credits=6, updated=3, ended=3)),
        execution(status="running", credits=5, updated=1),
        (),
        "failed",
        frozenset({"failed"}),
        stale=True,
    ),
    "flip back into a reported status: no transition": Case(
        stored(
            execution(status="running", credits=6, updated=4),
            reported=frozenset({"running", "failed"}),
        ),
        execution(status="failed", credits=6, updated=5, ended=5),
        (),
        "failed",
        frozenset({"running", "failed"}),
    ),
    "flip from terminal back to running already reported": Case(
        stored(
            execution(status="failed", credits=6, updated=3, ended=3),
            reported=frozenset({"running", "failed"}),
        ),
        execution(status="running", credits=6, updated=4),
        (),
        "running",
        frozenset({"running", "failed"}),
    ),
    "first seen terminal, later running is new": Case(
        stored(execution(status="failed", credits=6, updated=3, ended=3)),
        execution(status="running", credits=6, updated=4),
        (("status", "failed", "running", 6.0, 6.0, True),),
        "running",
        frozenset({"running", "failed"}),
    ),
    "purge alone: no transition": Case(
        stored(execution(status="completed", credits=3, updated=1, ended=1)),
        execution(status="completed", credits=3, updated=2, ended=1, purged=True),
        (),
        "completed",
        frozenset({"completed"}),
    ),
    "purge of a running execution: no transition": Case(
        stored(RUNNING_5),
        execution(status="running", credits=5, updated=2, purged=True),
        (),
        "running",
        frozenset({"running"}),
    ),
    "status change seen with a purge still counts": Case(
        stored(RUNNING_5),
        execution(status="failed", credits=5, updated=2, ended=2, purged=True),
        (("status", "running", "failed", 5.0, 5.0, True),),
        "failed",
        frozenset({"running", "failed"}),
    ),
    "vanished execution seen again": Case(
        replace(stored(RUNNING_5), status=VANISHED_STATUS),
        execution(status="completed", credits=5, updated=2, ended=2),
        (("status", VANISHED_STATUS, "completed", 5.0, 5.0, True),),
        "completed",
        frozenset({"running", "completed"}),
    ),
    "baseline: first seen terminal is recorded, not alertable": Case(
        None,
        execution(status="failed", credits=1, updated=9, ended=9),
        (("status", "unknown", "failed", 0.0, 1.0, False),),
        "failed",
        frozenset({"failed"}),
        policy=BASELINE,
    ),
    "baseline: first seen running is recorded, not alertable": Case(
        None,
        RUNNING_5,
        (("status", "unknown", "running", 0.0, 5.0, False),),
        "running",
        frozenset({"running"}),
        policy=BASELINE,
    ),
    "baseline does not silence a known execution": Case(
        stored(RUNNING_5),
        execution(status="failed", credits=5, updated=2, ended=2),
        (("status", "running", "failed", 5.0, 5.0, True),),
        "failed",
        frozenset({"running", "failed"}),
        policy=BASELINE,
    ),
    "backfill: ended inside the window alerts": Case(
        None,
        execution(status="failed", credits=1, updated=45, ended=45),
        (("status", "unknown", "failed", 0.0, 1.0, True),),
        "failed",
        frozenset({"failed"}),
        policy=BACKFILL_1H,
        now=90,
    ),
    "backfill: ended exactly at the window edge alerts": Case(
        None,
        execution(status="failed", credits=1, updated=30, ended=30),
        (("status", "unknown", "failed", 0.0, 1.0, True),),
        "failed",
        frozenset({"failed"}),
        policy=BACKFILL_1H,
        now=90,
    ),
    "backfill: ended before the window is recorded only": Case(
        None,
        execution(status="failed", credits=1, updated=29, ended=29),
        (("status", "unknown", "failed", 0.0, 1.0, False),),
        "failed",
        frozenset({"failed"}),
        policy=BACKFILL_1H,
        now=90,
    ),
    "backfill: running has not ended, recorded only": Case(
        None,
        execution(status="running", credits=1, updated=80),
        (("status", "unknown", "running", 0.0, 1.0, False),),
        "running",
        frozenset({"running"}),
        policy=BACKFILL_1H,
        now=90,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_observe(case: Case) -> None:
    now = at(case.now)
    result = observe(case.previous, case.observed, source=SOURCE, now=now, policy=case.policy)

    got = tuple(
        (t.kind, t.from_status, t.to_status, t.credits_before, t.credits_after, t.alertable)
        for t in result.transitions
    )
    assert got == case.expected
    assert result.state.status == case.status
    assert result.state.reported_statuses == case.reported
    assert result.state.last_seen_at == now
    assert result.stale is case.stale
    for transition in result.transitions:
        assert transition.source == SOURCE
        assert transition.execution_id == EXEC_ID
        assert transition.observed_at == now
        assert transition.execution is case.observed


def test_fresh_observation_replaces_every_field_but_reported_statuses() -> None:
    previous = stored(RUNNING_5, reported=frozenset({"running", "failed"}))
    observed = execution(status="running", credits=5, updated=7, purged=True)

    state = observe(previous, observed, source=SOURCE, now=at(9), policy=ALERT).state

    expected = TrackedExecution.from_execution(observed, source=SOURCE, now=at(9))
    assert state == replace(expected, reported_statuses=frozenset({"running", "failed"}))


def test_stale_observation_keeps_the_stored_state() -> None:
    previous = stored(execution(status="completed", credits=8, updated=5, ended=5), seen=5)

    result = observe(
        previous, execution(status="running", updated=4), source=SOURCE, now=at(9), policy=ALERT
    )

    assert result.state == replace(previous, last_seen_at=at(9))


def test_same_updated_at_is_not_stale() -> None:
    # Coarse upstream timestamps: equal `updatedAt` with a new status is trusted.
    previous = stored(execution(status="running", updated=5))
    observed = execution(status="failed", updated=5, ended=5)

    result = observe(previous, observed, source=SOURCE, now=at(6), policy=ALERT)

    assert [t.to_status for t in result.transitions] == ["failed"]


def test_flip_back_yields_one_transition_into_failed() -> None:
    sequence = [
        execution(status="running", credits=1, updated=1),
        execution(status="failed", credits=2, updated=2, ended=2),
        execution(status="running", credits=3, updated=3),
        execution(status="failed", credits=4, updated=4, ended=4),
        execution(status="running", credits=5, updated=5),
        execution(status="completed", credits=6, updated=6, ended=6),
    ]
    state: TrackedExecution | None = None
    into: list[str] = []
    for minute, observed in enumerate(sequence):
        result = observe(state, observed, source=SOURCE, now=at(minute), policy=ALERT)
        state = result.state
        into.extend(t.to_status for t in result.transitions if t.kind == "status")

    assert into == ["running", "failed", "completed"]


def test_observing_another_execution_is_a_bug() -> None:
    with pytest.raises(ValueError, match="compared with"):
        observe(
            stored(RUNNING_5),
            execution(execution_id="other"),
            source=SOURCE,
            now=at(1),
            policy=ALERT,
        )


@pytest.mark.parametrize(
    ("previous_status", "reported"),
    [
        ("running", frozenset({"running"})),
        ("completed", frozenset({"running", "completed"})),
        (VANISHED_STATUS, frozenset({"running"})),
    ],
)
def test_vanished(previous_status: str, reported: frozenset[str]) -> None:
    previous = replace(stored(RUNNING_5), status=previous_status, reported_statuses=reported)

    state = vanished(previous, now=at(30))

    assert state == replace(previous, status=VANISHED_STATUS, last_seen_at=at(30))
    assert not is_live(state)


@pytest.mark.parametrize(
    ("state", "live"),
    [
        (stored(RUNNING_5), True),
        (stored(execution(status="running", purged=True)), False),
        (stored(execution(status="failed", ended=1)), False),
        (replace(stored(RUNNING_5), status=VANISHED_STATUS), False),
    ],
    ids=["running", "running purged", "terminal", "vanished"],
)
def test_is_live(state: TrackedExecution, live: bool) -> None:
    assert is_live(state) is live


@pytest.mark.parametrize(
    ("previous", "observed", "unchanged"),
    [
        (None, RUNNING_5, False),
        (stored(RUNNING_5), RUNNING_5, True),
        (stored(RUNNING_5, seen=50), RUNNING_5, True),  # last_seen_at does not matter
        (stored(RUNNING_5), execution(status="running", credits=6, updated=1), False),
        (stored(RUNNING_5), execution(status="running", credits=5, updated=2), False),
        (stored(RUNNING_5), execution(status="failed", credits=5, updated=1), False),
        (stored(RUNNING_5), execution(status="running", credits=5, updated=1, purged=True), False),
    ],
    ids=["unknown", "identical", "seen later", "credits", "updated_at", "status", "purged"],
)
def test_is_unchanged(
    previous: TrackedExecution | None, observed: Execution, unchanged: bool
) -> None:
    assert is_unchanged(previous, observed) is unchanged


@pytest.mark.parametrize(
    ("first_poll", "on_first_start", "expected"),
    [
        (False, "baseline", FirstSeenPolicy(alertable=True)),
        (False, "backfill", FirstSeenPolicy(alertable=True)),
        (True, "baseline", FirstSeenPolicy(alertable=False)),
        (True, "backfill", FirstSeenPolicy(alertable=False, backfill_window=timedelta(hours=2))),
    ],
)
def test_policy_for_cycle(first_poll: bool, on_first_start: str, expected: FirstSeenPolicy) -> None:
    policy = FirstSeenPolicy.for_cycle(
        first_poll=first_poll,
        on_first_start="backfill" if on_first_start == "backfill" else "baseline",
        backfill_window=timedelta(hours=2),
    )
    assert policy == expected
