"""Table tests of windowed rules: measures, groups, and the firing -> resolved lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from relay.domain.aggregate import ALL_GROUP_KEY, WindowMeasure, condition_holds, measure_groups
from relay.domain.alerts import group_alert_id
from relay.domain.state import TrackedExecution
from relay.domain.windows import GroupState, WindowOutcome, evaluate_windows, step
from relay.settings import RuleSettings
from tests.rules_builders import SOURCE, at, context, execution, rule, tracked

NOW = 60.0  # minutes after T0; windows of 15m cover (45, 60]


def ended(
    status: str,
    minute: float,
    *,
    n: int = 1,
    credits: float = 0.0,
    prefix: str = "e",
    **kwargs: Any,
) -> list[TrackedExecution]:
    """`n` executions that ended with `status` at `minute`."""
    return [
        tracked(
            execution(
                f"{prefix}-{status}-{minute}-{i}",
                status=status,
                started=minute - 1,
                ended=minute,
                credits=credits,
                **kwargs,
            )
        )
        for i in range(n)
    ]


def running(
    minute: float, *, n: int = 1, credits: float = 0.0, **kwargs: Any
) -> list[TrackedExecution]:
    return [
        tracked(
            execution(
                f"run-{minute}-{i}", status="running", started=minute, credits=credits, **kwargs
            )
        )
        for i in range(n)
    ]


def evaluate(
    r: RuleSettings,
    executions: Sequence[TrackedExecution],
    previous: dict[tuple[str, str], GroupState] | None = None,
    *,
    now: float = NOW,
) -> WindowOutcome:
    return evaluate_windows([r], executions, previous or {}, ctx=context(now))


# --- measures -----------------------------------------------------------------------

RATIO = rule("ratio", window="15m", failure_ratio={"gt": 0.2}, min_executions=5)


@pytest.mark.parametrize(
    ("executions", "fires", "value"),
    [
        (ended("failed", 50, n=2) + ended("completed", 50, n=3), True, 0.4),
        (ended("failed", 50, n=1) + ended("completed", 50, n=4), False, 0.2),  # gt is strict
        (ended("failed", 50, n=2) + ended("completed", 50, n=2), False, 0.5),  # below min
        (ended("failed", 50, n=2) + ended("cancelled", 50, n=3), True, 0.4),  # cancelled counts
        (ended("cancelled", 50, n=5), False, 0.0),  # cancelled is not failed
        (ended("failed", 50, n=4) + running(50, n=10), False, 1.0),  # running are not ended
        (ended("failed", 40, n=5) + ended("completed", 50, n=5), False, 0.0),  # old ones left
        (ended("failed", 45, n=5) + ended("completed", 50, n=5), False, 0.0),  # window is (45, 60]
        (ended("failed", 45.5, n=5) + ended("completed", 50, n=5), True, 0.5),
        (ended("failed", 61, n=5), False, None),  # from the future: not in the window
        ([], False, None),
    ],
)
def test_failure_ratio(
    executions: list[TrackedExecution], fires: bool, value: float | None
) -> None:
    outcome = evaluate(RATIO, executions)
    assert [kind for _, kind, _ in outcome.alerts] == (["firing"] if fires else [])
    if executions and value is not None:
        [state] = outcome.states
        assert state.value == pytest.approx(value)
        assert state.firing is fires


def test_purged_running_and_vanished_executions_are_not_in_the_window() -> None:
    r = rule("count", window="15m", count={"gte": 1})
    purged = running(50, is_purged=True)
    gone = replace(ended("failed", 50)[0], status="vanished")
    assert evaluate(r, [*purged, gone]).alerts == []
    assert len(evaluate(r, running(50)).alerts) == 1


@pytest.mark.parametrize(
    ("threshold", "executions", "fires", "value"),
    [
        ({"gt": 100}, ended("completed", 50, n=2, credits=60), True, 120),
        ({"gt": 120}, ended("completed", 50, n=2, credits=60), False, 120),
        ({"gte": 120}, ended("completed", 50, n=2, credits=60), True, 120),
        ({"gt": 100}, ended("completed", 50, credits=60) + running(10, credits=60), True, 120),
        (
            {"gt": 100},
            ended("completed", 30, credits=60) + ended("failed", 50, credits=60),
            False,
            60,
        ),
    ],
)
def test_credits_sum(
    threshold: dict[str, float], executions: list[TrackedExecution], fires: bool, value: float
) -> None:
    r = rule("burn", window="15m", credits_sum=threshold)
    outcome = evaluate(r, executions)
    assert [kind for _, kind, _ in outcome.alerts] == (["firing"] if fires else [])
    assert outcome.states[0].value == pytest.approx(value)


@pytest.mark.parametrize(
    ("count", "fires", "value"),
    [
        ({"gte": 3}, True, 6),  # everything in the window: 2 failed, 1 cancelled, 2 ok, 1 running
        ({"gt": 6}, False, 6),
        ({"gte": 3, "statuses": ["failed", "cancelled"]}, True, 3),
        ({"gt": 3, "statuses": ["failed", "cancelled"]}, False, 3),
        ({"gte": 1, "statuses": ["running"]}, True, 1),
        ({"gte": 2, "statuses": "failed"}, True, 2),
    ],
)
def test_count(count: dict[str, Any], fires: bool, value: float) -> None:
    executions = (
        ended("failed", 50, n=2)
        + ended("cancelled", 55)
        + ended("completed", 58, n=2)
        + running(59)
        + ended("failed", 20, n=4)  # outside the window
    )
    outcome = evaluate(rule("count", window="15m", count=count), executions)
    assert [kind for _, kind, _ in outcome.alerts] == (["firing"] if fires else [])
    assert outcome.states[0].value == value


def test_min_executions_guards_every_aggregate() -> None:
    r = rule("count", window="15m", count={"gte": 1}, min_executions=3)
    assert evaluate(r, ended("failed", 50, n=2)).alerts == []
    assert len(evaluate(r, ended("failed", 50, n=3)).alerts) == 1


def test_several_aggregates_must_all_hold() -> None:
    r = rule("both", window="15m", failure_ratio={"gte": 0.5}, credits_sum={"gt": 100})
    assert evaluate(r, ended("failed", 50, n=2, credits=10)).alerts == []
    assert len(evaluate(r, ended("failed", 50, n=2, credits=60)).alerts) == 1


def test_condition_holds_needs_an_aggregate() -> None:
    assert not condition_holds(rule("plain", status=["failed"]).when, WindowMeasure(terminal=9))


def test_measure_groups_refuses_per_execution_rules() -> None:
    with pytest.raises(ValueError, match="no window"):
        measure_groups(rule("plain", status=["failed"]), [], now=at(0))


# --- groups -------------------------------------------------------------------------


def mixed() -> list[TrackedExecution]:
    return (
        ended("failed", 50, n=2, prefix="a", responder_id="r1", agent_id="agent-1")
        + ended("failed", 50, n=1, prefix="b", responder_id="r2", agent_id="agent-2")
        + ended(
            "failed", 50, n=3, prefix="c", kind="workflow", responder_id="r3", workflow_id="wf-1"
        )
        + ended("failed", 50, n=1, prefix="d", kind="squad", responder_id="r1", agent_id="agent-1")
    )


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ([], {ALL_GROUP_KEY: 7}),
        (["responder_id"], {"responder_id=r1": 3, "responder_id=r2": 1, "responder_id=r3": 3}),
        (["agent_id"], {"agent_id=agent-1": 3, "agent_id=agent-2": 1}),  # workflows have none
        (["workflow_id"], {"workflow_id=wf-1": 3}),
        (["type"], {"type=agent": 3, "type=workflow": 3, "type=squad": 1}),
        (
            ["responder_id", "type"],
            {
                "responder_id=r1|type=agent": 2,
                "responder_id=r1|type=squad": 1,
                "responder_id=r2|type=agent": 1,
                "responder_id=r3|type=workflow": 3,
            },
        ),
        (
            ["type", "agent_id"],
            {
                "type=agent|agent_id=agent-1": 2,
                "type=agent|agent_id=agent-2": 1,
                "type=squad|agent_id=agent-1": 1,
            },
        ),
    ],
)
def test_group_by(group_by: list[str], expected: dict[str, int]) -> None:
    r = rule("count", window="15m", group_by=group_by, count={"gte": 3})
    outcome = evaluate(r, mixed())
    assert {s.group_key: s.value for s in outcome.states} == expected
    firing = {s.group_key for s in outcome.states if s.firing}
    assert firing == {key for key, count in expected.items() if count >= 3}
    for alert, kind, _ in outcome.alerts:
        assert kind == "firing"
        assert alert.group is not None
        for key, value in alert.group.items():
            assert alert.labels[key] == value
        assert set(alert.labels) == {"rule", "severity", "source", *group_by}


# --- lifecycle ----------------------------------------------------------------------


LIFE = rule(
    "life",
    window="15m",
    group_by=["responder_id"],
    count={"gte": 2, "statuses": ["failed"]},
    repeat_interval="10m",
)


def run(
    timeline: list[tuple[float, list[TrackedExecution]]],
) -> list[tuple[float, str, int, str, str]]:
    """Evaluate LIFE at each (minute, executions); (minute, kind, seq, alert id, state)."""
    previous: dict[tuple[str, str], GroupState] = {}
    seen: list[tuple[float, str, int, str, str]] = []
    for minute, executions in timeline:
        outcome = evaluate(LIFE, executions, previous, now=minute)
        previous |= {state.key: state for state in outcome.states}
        seen.extend(
            (minute, kind, seq, alert.id, alert.state) for alert, kind, seq in outcome.alerts
        )
    return seen


def test_firing_reminders_resolved_then_a_new_episode() -> None:
    burst = ended("failed", 1, n=3, responder_id="r1")
    second = ended("failed", 40, n=2, responder_id="r1", prefix="again")
    timeline = [(m, burst) for m in (0.5, 2, 5, 11, 12, 21, 25, 31)]  # burst leaves at 16
    timeline += [(m, burst + second) for m in (40, 41, 55, 56)]  # second leaves at 55
    events = run(timeline)
    first = group_alert_id(rule="life", source=SOURCE, group_key="responder_id=r1", episode=1)
    again = group_alert_id(rule="life", source=SOURCE, group_key="responder_id=r1", episode=2)
    assert events == [
        (2, "firing", 0, first, "firing"),
        (12, "reminder", 1, first, "firing"),
        (21, "resolved", 0, first, "resolved"),  # no reminder at 22: it cleared at 16
        (40, "firing", 0, again, "firing"),
        (55, "resolved", 0, again, "resolved"),
    ]


def test_reminders_repeat_every_interval_while_firing() -> None:
    burst = ended("failed", 0, n=3, responder_id="r1")
    always = [
        (m, [*burst, *ended("failed", m, n=2, responder_id="r1", prefix=f"m{m}")])
        for m in range(1, 60)
    ]
    events = run(always)
    kinds = [(minute, kind, seq) for minute, kind, seq, _, _ in events]
    assert kinds == [
        (1, "firing", 0),
        (11, "reminder", 1),
        (21, "reminder", 2),
        (31, "reminder", 3),
        (41, "reminder", 4),
        (51, "reminder", 5),
    ]


def test_a_group_without_executions_resolves() -> None:
    previous: dict[tuple[str, str], GroupState] = {}
    outcome = evaluate(LIFE, ended("failed", 50, n=2, responder_id="r9"), previous)
    previous |= {s.key: s for s in outcome.states}
    later = evaluate(LIFE, [], previous, now=NOW + 1)
    [(alert, kind, _)] = later.alerts
    assert (kind, alert.state, alert.ended_at) == ("resolved", "resolved", at(NOW + 1))
    assert alert.started_at == at(NOW)
    [state] = later.states
    assert (state.firing, state.episode, state.resolved_at, state.value) == (
        False,
        1,
        at(NOW + 1),
        0.0,
    )


def test_only_changed_states_are_returned() -> None:
    executions = ended("failed", 50, n=1, responder_id="r1")
    first = evaluate(LIFE, executions)
    [state] = first.states
    assert not state.firing
    again = evaluate(LIFE, executions, {state.key: state}, now=NOW + 0.5)
    assert again.states == []
    assert again.alerts == []


def test_states_of_other_sources_and_removed_rules_are_left_alone() -> None:
    foreign = GroupState(
        rule="life",
        source="staging",
        group_key="responder_id=r1",
        group={"responder_id": "r1"},
        firing=True,
        episode=3,
        fired_at=at(0),
        last_notified_at=at(0),
    )
    removed = GroupState(
        rule="gone",
        source=SOURCE,
        group_key=ALL_GROUP_KEY,
        group={},
        firing=True,
        episode=1,
        fired_at=at(0),
        last_notified_at=at(0),
    )
    outcome = evaluate(LIFE, [], {foreign.key: foreign, removed.key: removed})
    assert outcome.states == []
    assert outcome.alerts == []


@pytest.mark.parametrize(
    ("before", "holds", "now", "kind", "seq"),
    [
        (GroupState("r", SOURCE, "*", {}), False, 0, None, 0),
        (GroupState("r", SOURCE, "*", {}), True, 0, "firing", 0),
        (GroupState("r", SOURCE, "*", {}, True, 1, at(0), at(0), 0), True, 9, None, 0),
        (GroupState("r", SOURCE, "*", {}, True, 1, at(0), at(0), 0), True, 10, "reminder", 1),
        (GroupState("r", SOURCE, "*", {}, True, 1, at(0), at(10), 1), True, 20, "reminder", 2),
        (GroupState("r", SOURCE, "*", {}, True, 1, at(0), at(10), 1), False, 11, "resolved", 0),
        (
            GroupState("r", SOURCE, "*", {}, False, 1, at(0), at(10), 1, 0.5, at(11)),
            True,
            12,
            "firing",
            0,
        ),
    ],
)
def test_step(before: GroupState, holds: bool, now: float, kind: str | None, seq: int) -> None:
    after, got_kind, got_seq = step(
        before, holds=holds, value=1.0, now=at(now), repeat_interval=timedelta(minutes=10)
    )
    assert (got_kind, got_seq) == (kind, seq)
    assert after.value == 1.0
    if kind == "firing":
        assert (after.firing, after.episode, after.fired_at, after.reminders_sent) == (
            True,
            before.episode + 1,
            at(now),
            0,
        )
        assert after.resolved_at is None
    if kind == "resolved":
        assert (after.firing, after.episode, after.resolved_at) == (False, before.episode, at(now))
    if kind == "reminder":
        assert after.last_notified_at == at(now)


def test_window_alert_text() -> None:
    r = rule(
        "agent-failure-rate",
        window="15m",
        group_by=["responder_id"],
        failure_ratio={"gt": 0.2},
        min_executions=4,
        severity="warning",
    )
    executions = ended("failed", 50, n=3, responder_id="r1") + ended(
        "completed", 50, n=2, responder_id="r1"
    )
    [(alert, _, _)] = evaluate(r, executions).alerts
    assert (
        alert.summary
        == "failure ratio 60% (3 of 5 ended) > 20% over the last 15m for responder_id=r1"
    )
    assert alert.value == pytest.approx(0.6)
    assert alert.execution is None
    assert alert.link is None  # the default link needs an execution id
    for fragment in (
        "Rule: agent-failure-rate (warning)",
        "Group: responder_id=r1",
        "Window: last 15m",
        "Executions in window: 5 ended (3 failed), 0 running",
        "Minimum ended executions: 4",
    ):
        assert fragment in alert.description
    resolved = evaluate(
        r,
        executions,
        {
            ("agent-failure-rate", "responder_id=r1"): GroupState(
                "agent-failure-rate",
                SOURCE,
                "responder_id=r1",
                {"responder_id": "r1"},
                True,
                1,
                at(50),
                at(50),
            )
        },
        now=70,
    )
    [(gone, kind, _)] = resolved.alerts
    assert kind == "resolved"
    assert gone.summary.startswith("resolved: failure ratio n/a (0 of 0 ended), threshold > 20%")


def test_window_templates_and_links() -> None:
    r = rule(
        "burn",
        window="1h",
        group_by=["responder_id"],
        credits_sum={"gt": 10},
        summary="{rule}: {credits_sum} credits on {responder_id} in {window} ({state})",
    )
    ctx = context(NOW, link_template="https://zaia.example/{source}/responders/{responder_id}")
    outcome = evaluate_windows(
        [r], ended("completed", 50, credits=12.5, responder_id="r1"), {}, ctx=ctx
    )
    [(alert, _, _)] = outcome.alerts
    assert alert.summary == "burn: 12.5 credits on r1 in 1h (firing)"
    assert alert.link == "https://zaia.example/prod/responders/r1"
