"""Per-execution rules fire at most once per execution, whatever the order of observations.

Each execution of a small family (roots, children, grandchildren) has an upstream
history of (status, credits) states; each step of it is a transition. Hypothesis
shuffles all transitions, duplicates some (a replayed cycle), and cuts them into
cycles. Each cycle goes through `evaluate_transitions`; a set of already-fired ids
stands in for the store, which never overwrites a per-execution alert.

Properties:
- one id per (rule, execution), ever: the engine never produces two different ids
  for the same rule and execution, and within one cycle never the same id twice;
- once the store drops ids it has seen, each alert is delivered exactly once;
- for root executions, *whether* a rule fires does not depend on the order or the
  cycling: it fires iff some single transition of it matches the rule;
- a child may only be silent where it would fire alone if its failure was folded into
  an ancestor's alert in the same cycle, and that alert names it;
- every alert is sound: the facts it carries satisfy its rule.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.alerts import Alert, execution_alert_id
from relay.domain.rules import evaluate_transitions
from relay.domain.state import UNKNOWN_STATUS, Transition
from tests.rules_builders import SOURCE, context, execution, rule, transition

RULES = [
    rule("failed", status=["failed"]),
    rule("bad-root", status=["failed", "cancelled"], root_only=True),
    rule("left-running", from_status=["running"], status=["failed", "cancelled"]),
    rule("expensive", credits_used={"gt": 100}),
    rule("expensive-failed", credits_used={"gte": 50}, status=["failed"]),
    rule("slow", duration={"gt": "10m"}),
    rule("workflows", types=["workflow"], status=["failed"]),
    rule("agentic", is_agentic=True, status=["completed", "failed"]),
    rule("first-seen", from_status=[UNKNOWN_STATUS]),
]
RULE_BY_NAME = {r.name: r for r in RULES}
STATUSES = ("running", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class Spec:
    execution_id: str
    parent_id: str | None
    kind: str
    is_agentic: bool
    duration_m: int
    history: tuple[tuple[str, int], ...]  # (status, credits) as polls saw them


@st.composite
def families(draw: st.DrawFn) -> list[Spec]:
    count = draw(st.integers(min_value=1, max_value=6))
    specs: list[Spec] = []
    for index in range(count):
        parent = draw(st.sampled_from([None, *[s.execution_id for s in specs]]))
        history = draw(
            st.lists(
                st.tuples(st.sampled_from(STATUSES), st.integers(min_value=0, max_value=200)),
                min_size=1,
                max_size=4,
            )
        )
        specs.append(
            Spec(
                execution_id=f"exec-{index}",
                parent_id=parent,
                kind=draw(st.sampled_from(["agent", "workflow", "squad"])),
                is_agentic=draw(st.booleans()),
                duration_m=draw(st.integers(min_value=1, max_value=30)),
                history=tuple(history),
            )
        )
    return specs


def transitions_of(spec: Spec, *, baseline: bool) -> list[Transition]:
    found: list[Transition] = []
    previous_status, previous_credits = UNKNOWN_STATUS, 0
    for step, (status, credits) in enumerate(spec.history):
        exec_ = execution(
            spec.execution_id,
            status=status,
            kind=spec.kind,
            parent_id=spec.parent_id,
            is_agentic=spec.is_agentic,
            credits=credits,
            started=0,
            ended=spec.duration_m if status != "running" else None,
            updated=step + spec.duration_m,
        )
        same_status = status == previous_status
        found.append(
            transition(
                exec_,
                from_status=previous_status,
                kind="credits" if same_status and status == "running" else "status",
                credits_before=previous_credits,
                alertable=not (baseline and step == 0),
            )
        )
        previous_status, previous_credits = status, credits
    return found


def fires_alone(name: str, t: Transition) -> bool:
    return bool(evaluate_transitions([RULE_BY_NAME[name]], [t], ctx=context(60)))


def check_sound(alert: Alert) -> None:
    r = RULE_BY_NAME[alert.rule]
    facts = alert.execution
    assert facts is not None
    assert alert.id == execution_alert_id(rule=r.name, source=SOURCE, execution_id=facts.id)
    when = r.when
    if when.status is not None:
        assert facts.status in when.status
    if when.credits_used is not None:
        assert when.credits_used.holds(facts.credits_used)
    if when.duration is not None:
        assert facts.duration_s is not None
        assert facts.duration_s > when.duration.gt.total_seconds()
    if when.types is not None:
        assert facts.kind in when.types
    if when.root_only:
        assert facts.parent_id is None


@settings(max_examples=300, deadline=None)
@given(
    specs=families(),
    baseline=st.booleans(),
    data=st.data(),
)
def test_per_execution_rules_fire_at_most_once_whatever_the_order(
    specs: list[Spec], baseline: bool, data: st.DataObject
) -> None:
    everything = [t for spec in specs for t in transitions_of(spec, baseline=baseline)]
    replays = data.draw(st.lists(st.sampled_from(everything), max_size=4), label="replays")
    order = data.draw(st.permutations(everything + replays), label="order")
    cuts = sorted(
        data.draw(
            st.lists(st.integers(min_value=0, max_value=len(order)), max_size=5), label="cuts"
        )
    )
    cycles = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]

    ids_of: dict[tuple[str, str], set[str]] = defaultdict(set)
    fired: set[str] = set()  # the store: alert ids already recorded
    delivered: list[str] = []
    # (rule, execution) -> descriptions of alerts about its ancestors in cycles where
    # one of its own transitions matching the rule was present.
    absorbed_by: dict[tuple[str, str], list[str]] = defaultdict(list)
    parents = {spec.execution_id: spec.parent_id for spec in specs}
    for cycle in cycles:
        alerts = evaluate_transitions(RULES, cycle, ctx=context(60))
        assert len({a.id for a in alerts}) == len(alerts), "one alert per id within a cycle"
        for alert in alerts:
            check_sound(alert)
            assert alert.execution is not None
            ids_of[(alert.rule, alert.execution.id)].add(alert.id)
            if alert.id not in fired:
                fired.add(alert.id)
                delivered.append(alert.id)
        for t in cycle:
            for alert in alerts:
                assert alert.execution is not None
                above = ancestors(t.execution_id, parents)
                if alert.execution.id in above and fires_alone(alert.rule, t):
                    absorbed_by[(alert.rule, t.execution_id)].append(alert.description)

    assert all(len(ids) == 1 for ids in ids_of.values()), "two ids for one rule+execution"
    assert len(delivered) == len(set(delivered)) == len(ids_of)

    for name in RULE_BY_NAME:
        for spec in specs:
            alone = any(fires_alone(name, t) for t in transitions_of(spec, baseline=baseline))
            fired_here = (name, spec.execution_id) in ids_of
            if parents[spec.execution_id] is None:
                assert fired_here == alone, f"{name} on root {spec.execution_id}"
            elif fired_here:
                assert alone
            elif alone:
                # Silent only because an ancestor's alert of this rule, in a cycle where
                # the child's failure was seen too, absorbed it and names it.
                descriptions = absorbed_by[(name, spec.execution_id)]
                assert any(spec.execution_id in d for d in descriptions), f"{name} lost it"


def ancestors(execution_id: str, parents: dict[str, str | None]) -> set[str]:
    found: set[str] = set()
    parent = parents.get(execution_id)
    while parent is not None and parent not in found:
        found.add(parent)
        parent = parents.get(parent)
    return found
