"""Lifecycle invariants of windowed rules under arbitrary traffic and poll times.

Hypothesis generates executions (group, final status, credits, start and end times)
and increasing cycle times; each cycle evaluates the windowed rules on what a store
would hold at that time (executions ended so far, and those still running), with the
group states the previous cycle returned. Whatever the traffic:
- a group never resolves without having fired, and each episode fires once, then
  sends reminders, then resolves at most once (nothing after it);
- episodes of a group count 1, 2, 3 ... and each has its own alert id;
- reminders are at least `repeat_interval` after the previous notification of their
  episode, and are numbered 1, 2, 3 ...;
- a firing or reminder is only sent while the condition holds, a resolve only once it
  no longer does (checked against an independent recount);
- notification ids never repeat across the run.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.alerts import Alert
from relay.domain.rules import notifications_for
from relay.domain.state import TrackedExecution
from relay.domain.windows import GroupState, evaluate_windows
from relay.settings import RuleSettings
from relay.vocab import NotificationKind
from tests.rules_builders import at, context, execution, rule, tracked

RULES = [
    rule(
        "ratio",
        window="15m",
        group_by=["responder_id"],
        failure_ratio={"gte": 0.5},
        min_executions=2,
        repeat_interval="10m",
    ),
    rule("burn", window="30m", credits_sum={"gt": 100}, repeat_interval="7m"),
    rule(
        "failures",
        window="10m",
        group_by=["responder_id", "type"],
        count={"gte": 2, "statuses": ["failed", "cancelled"]},
        repeat_interval="5m",
    ),
]
BY_NAME = {r.name: r for r in RULES}


@dataclass(frozen=True)
class Planned:
    index: int
    responder: str
    kind: str
    status: str
    credits: int
    start_m: float
    run_m: float

    @property
    def end_m(self) -> float:
        return self.start_m + self.run_m

    def as_seen_at(self, now_m: float) -> TrackedExecution | None:
        if now_m < self.start_m:
            return None
        done = now_m >= self.end_m
        exec_ = execution(
            f"exec-{self.index}",
            status=self.status if done else "running",
            kind=self.kind,
            responder_id=self.responder,
            credits=self.credits if done else self.credits / 2,
            started=self.start_m,
            ended=self.end_m if done else None,
        )
        return tracked(exec_, seen=now_m)


@st.composite
def planned_executions(draw: st.DrawFn) -> list[Planned]:
    minutes = st.floats(min_value=0, max_value=120, allow_nan=False).map(lambda m: round(m, 1))
    count = draw(st.integers(min_value=0, max_value=30))
    return [
        Planned(
            index=index,
            responder=draw(st.sampled_from(["r1", "r2"])),
            kind=draw(st.sampled_from(["agent", "workflow"])),
            status=draw(st.sampled_from(["completed", "failed", "cancelled"])),
            credits=draw(st.integers(min_value=0, max_value=60)),
            start_m=draw(minutes),
            run_m=draw(st.floats(min_value=0.1, max_value=20).map(lambda m: round(m, 1))),
        )
        for index in range(count)
    ]


def holds_now(
    r: RuleSettings, group: dict[str, str], seen: list[TrackedExecution], now_m: float
) -> bool:
    """An independent recount of the rule's condition for one group."""
    assert r.window is not None
    start = at(now_m) - r.window
    members = [
        e
        for e in seen
        if all((e.kind if k == "type" else getattr(e, k)) == v for k, v in group.items())
        and (e.status == "running" or (e.ended_at is not None and start < e.ended_at <= at(now_m)))
    ]
    ended = [e for e in members if e.status != "running"]
    when = r.when
    if when.min_executions is not None and len(ended) < when.min_executions:
        return False
    if when.failure_ratio is not None:
        if not ended:
            return False
        if not when.failure_ratio.holds(sum(e.status == "failed" for e in ended) / len(ended)):
            return False
    if when.credits_sum is not None and not when.credits_sum.holds(
        sum(e.credits_used for e in members)
    ):
        return False
    if when.count is not None:
        statuses = when.count.statuses
        counted = [e for e in members if statuses is None or e.status in statuses]
        if not when.count.holds(len(counted)):
            return False
    return True


@settings(max_examples=200, deadline=None)
@given(
    plan=planned_executions(),
    gaps=st.lists(st.floats(min_value=0.1, max_value=12, allow_nan=False), min_size=1, max_size=40),
)
def test_windowed_groups_fire_remind_and_resolve_in_order(
    plan: list[Planned], gaps: list[float]
) -> None:
    previous: dict[tuple[str, str], GroupState] = {}
    # per (rule, group key): list of (minute, kind, sequence, alert)
    history: dict[tuple[str, str], list[tuple[float, NotificationKind, int, Alert]]] = defaultdict(
        list
    )
    notification_ids: set[tuple[str, str]] = set()
    now_m = 0.0
    for gap in gaps:
        now_m = round(now_m + gap, 3)
        seen = [e for p in plan if (e := p.as_seen_at(now_m)) is not None]
        outcome = evaluate_windows(RULES, seen, previous, ctx=context(now_m))
        for state in outcome.states:
            assert state.key not in previous or previous[state.key] != state
        previous |= {state.key: state for state in outcome.states}
        for alert, kind, sequence in outcome.alerts:
            assert alert.group is not None
            key = (alert.rule, previous_key(alert, previous))
            history[key].append((now_m, kind, sequence, alert))
            expected = holds_now(BY_NAME[alert.rule], dict(alert.group), seen, now_m)
            assert expected is (kind != "resolved"), f"{kind} of {alert.rule} at {now_m}"
        notifications, _, _ = notifications_for(outcome.alerts, RULES, silences=[], now=at(now_m))
        for n in notifications:
            assert (n.id, n.sink) not in notification_ids
            notification_ids.add((n.id, n.sink))

    for (rule_name, _), events in history.items():
        repeat = BY_NAME[rule_name].repeat_interval
        episode_ids: list[str] = []
        last_at: float | None = None
        reminders = 0
        open_episode = False
        for minute, kind, sequence, alert in events:
            if kind == "firing":
                assert not open_episode, "fired twice in one episode"
                assert alert.id not in episode_ids, "an episode id was reused"
                episode_ids.append(alert.id)
                open_episode, last_at, reminders = True, minute, 0
                assert alert.state == "firing"
            elif kind == "reminder":
                assert open_episode, "reminder outside an episode"
                assert alert.id == episode_ids[-1]
                assert last_at is not None
                assert at(minute) - at(last_at) >= repeat - timedelta(microseconds=1)
                reminders += 1
                assert sequence == reminders
                last_at = minute
            else:
                assert open_episode, "resolved without having fired"
                assert alert.id == episode_ids[-1]
                assert alert.state == "resolved"
                assert alert.ended_at == at(minute)
                open_episode = False
        state = previous[(rule_name, previous_key(events[0][3], previous))]
        assert state.episode == len(episode_ids)
        assert state.firing is open_episode


def previous_key(alert: Alert, states: dict[tuple[str, str], GroupState]) -> str:
    """The group key of an alert's group (as the states hold it)."""
    assert alert.group is not None
    matches = [
        key
        for (rule_name, key), state in states.items()
        if rule_name == alert.rule and dict(state.group) == dict(alert.group)
    ]
    assert len(matches) == 1
    return matches[0]
