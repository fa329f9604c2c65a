"""Table tests of per-execution rules (`relay.domain.rules`) and of every filter in every
kind of rule, per-execution and windowed alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from relay.domain.alerts import Alert, execution_alert_id
from relay.domain.models import Execution
from relay.domain.rules import evaluate_running, evaluate_transitions
from relay.domain.state import Transition
from relay.domain.windows import evaluate_windows
from relay.settings import RuleSettings
from tests.rules_builders import (
    SOURCE,
    at,
    context,
    execution,
    rule,
    tracked,
    transition,
)

# --- rule kinds ---------------------------------------------------------------------


@dataclass(frozen=True)
class KindCase:
    when: dict[str, Any]
    transition: Transition
    condition: str | None  # None: does not fire; else a fragment of the alert's condition


def _status(to: str, *, frm: str = "running", **kwargs: Any) -> Transition:
    return transition(execution(status=to, **kwargs), from_status=frm)


def _credits(before: float, after: float, **kwargs: Any) -> Transition:
    exec_ = execution(status="running", credits=after, **kwargs)
    return transition(exec_, kind="credits", credits_before=before)


KIND_CASES = {
    # status transitions
    "status failed fires on failed": KindCase({"status": ["failed"]}, _status("failed"), "failed"),
    "status failed ignores completed": KindCase({"status": ["failed"]}, _status("completed"), None),
    "status list fires on cancelled": KindCase(
        {"status": ["failed", "cancelled"]}, _status("cancelled"), "was cancelled"
    ),
    "status running fires when first seen running": KindCase(
        {"status": ["running"]}, _status("running", frm="unknown"), "is running"
    ),
    "status rule ignores credits transitions": KindCase(
        {"status": ["running"]}, _credits(10, 20), None
    ),
    "from_status matches the status left": KindCase(
        {"status": ["failed"], "from_status": ["running"]}, _status("failed"), "failed"
    ),
    "from_status rejects other statuses left": KindCase(
        {"status": ["failed"], "from_status": ["running"]},
        _status("failed", frm="unknown"),
        None,
    ),
    "from_status unknown matches first sight": KindCase(
        {"from_status": ["unknown"]}, _status("completed", frm="unknown"), "completed"
    ),
    "non-alertable transitions never fire": KindCase(
        {"status": ["failed"]},
        transition(execution(status="failed"), alertable=False),
        None,
    ),
    # credits thresholds
    "credits gt fires while running": KindCase(
        {"credits_used": {"gt": 500}}, _credits(400, 612), "used 612 credits (> 500), still running"
    ),
    "credits gt is strict": KindCase({"credits_used": {"gt": 500}}, _credits(400, 500), None),
    "credits gte includes the threshold": KindCase(
        {"credits_used": {"gte": 500}}, _credits(400, 500), "(>= 500)"
    ),
    "credits below threshold": KindCase({"credits_used": {"gt": 500}}, _credits(1, 499.5), None),
    "credits fire on a status transition too": KindCase(
        {"credits_used": {"gt": 500}},
        _status("failed", credits=900),
        "used 900 credits (> 500), failed",
    ),
    "credits with status failed skip running": KindCase(
        {"credits_used": {"gt": 500}, "status": ["failed"]}, _credits(400, 900), None
    ),
    "credits with status failed fire on failure": KindCase(
        {"credits_used": {"gt": 500}, "status": ["failed"]},
        _status("failed", credits=900),
        "failed",
    ),
    "credits with status running fire while running": KindCase(
        {"credits_used": {"gt": 500}, "status": ["running"]}, _credits(400, 900), "still running"
    ),
    # duration (slow)
    "duration fires on a slow completion": KindCase(
        {"duration": {"gt": "10m"}},
        _status("completed", started=0, ended=11),
        "took 11m (> 10m), completed",
    ),
    "duration ignores a quick completion": KindCase(
        {"duration": {"gt": "10m"}}, _status("completed", started=0, ended=9), None
    ),
    "duration is strict": KindCase(
        {"duration": {"gt": "10m"}}, _status("completed", started=0, ended=10), None
    ),
    "duration ignores running executions": KindCase(
        {"duration": {"gt": "10m"}}, _status("running", frm="unknown", started=0, updated=30), None
    ),
    "duration ignores credits transitions": KindCase(
        {"duration": {"gt": "10m"}}, _credits(1, 2, started=0, updated=30), None
    ),
    "duration with status failed": KindCase(
        {"duration": {"gt": "10m"}, "status": ["failed"]},
        _status("failed", started=0, ended=45),
        "took 45m (> 10m), failed",
    ),
    "duration with status failed skips completed": KindCase(
        {"duration": {"gt": "10m"}, "status": ["failed"]},
        _status("completed", started=0, ended=45),
        None,
    ),
    "duration and credits both hold": KindCase(
        {"duration": {"gt": "10m"}, "credits_used": {"gt": 5}},
        _status("completed", started=0, ended=20, credits=6),
        "used 6 credits (> 5), took 20m (> 10m), completed",
    ),
    "duration holds, credits do not": KindCase(
        {"duration": {"gt": "10m"}, "credits_used": {"gt": 5}},
        _status("completed", started=0, ended=20, credits=4),
        None,
    ),
}


@pytest.mark.parametrize("case", KIND_CASES.values(), ids=KIND_CASES.keys())
def test_rule_kinds(case: KindCase) -> None:
    r = rule("r", **case.when)
    alerts = evaluate_transitions([r], [case.transition], ctx=context(60))
    if case.condition is None:
        assert alerts == []
        return
    [alert] = alerts
    assert alert.id == execution_alert_id(rule="r", source=SOURCE, execution_id="exec-1")
    assert alert.state == "firing"
    assert alert.started_at == case.transition.observed_at
    assert case.condition in alert.summary
    assert case.condition in alert.description


def test_a_terminal_execution_without_ended_at_uses_its_last_update() -> None:
    exec_ = execution(status="completed", started=0, ended=None, updated=20)
    quirky = exec_.model_copy(update={"ended_at": None})
    alerts = evaluate_transitions(
        [rule("slow", duration={"gt": "10m"})], [transition(quirky)], ctx=context(30)
    )
    assert [a.rule for a in alerts] == ["slow"]


def test_windowed_and_running_for_rules_ignore_transitions() -> None:
    rules = [
        rule("stuck", running_for={"gt": "1m"}),
        rule("ratio", window="15m", failure_ratio={"gt": 0.1}),
    ]
    assert evaluate_transitions(rules, [_status("failed")], ctx=context()) == []


def test_one_alert_per_rule_and_execution_within_a_batch() -> None:
    failing = execution(status="failed", credits=900)
    batch = [transition(failing), transition(failing, kind="credits")]
    rules = [rule("a", status=["failed"]), rule("b", credits_used={"gt": 1})]
    alerts = evaluate_transitions(rules, batch, ctx=context())
    assert sorted(a.rule for a in alerts) == ["a", "b"]
    assert len({a.id for a in alerts}) == 2


def test_transitions_of_another_source_are_refused() -> None:
    t = transition(execution(status="failed"), source="staging")
    with pytest.raises(ValueError, match="staging"):
        evaluate_transitions([rule("r", status=["failed"])], [t], ctx=context())


# --- running_for --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "state_kwargs", "now", "fires"),
    [
        ({"running_for": {"gt": "30m"}}, {}, 31, True),
        ({"running_for": {"gt": "30m"}}, {}, 30, False),
        ({"running_for": {"gt": "30m"}}, {}, 5, False),
        ({"running_for": {"gt": "30m"}}, {"is_purged": True}, 90, False),
        ({"running_for": {"gt": "30m"}, "status": ["running"]}, {}, 31, True),
        ({"running_for": {"gt": "30m"}, "credits_used": {"gt": 10}}, {"credits": 11}, 31, True),
        ({"running_for": {"gt": "30m"}, "credits_used": {"gt": 10}}, {"credits": 9}, 31, False),
    ],
)
def test_running_for(
    when: dict[str, Any], state_kwargs: dict[str, Any], now: float, fires: bool
) -> None:
    state = tracked(execution(status="running", started=0, **state_kwargs))
    alerts = evaluate_running([rule("stuck", **when)], [state], ctx=context(now))
    assert [a.rule for a in alerts] == (["stuck"] if fires else [])
    if fires:
        [alert] = alerts
        assert alert.id == execution_alert_id(rule="stuck", source=SOURCE, execution_id="exec-1")
        assert alert.started_at == at(now)
        assert f"has been running for {now:g}m (> 30m)" in alert.summary


def test_running_for_skips_executions_that_are_no_longer_running() -> None:
    done = tracked(execution(status="completed", started=0, ended=1))
    assert (
        evaluate_running([rule("stuck", running_for={"gt": "1m"})], [done], ctx=context(60)) == []
    )


def test_running_for_only_evaluates_running_for_rules() -> None:
    state = tracked(execution(status="running", started=0))
    rules = [rule("failed", status=["failed"]), rule("sum", window="1h", credits_sum={"gte": 0})]
    assert evaluate_running(rules, [state], ctx=context(600)) == []


# --- every filter in every rule -----------------------------------------------------


@dataclass(frozen=True)
class FilterCase:
    when: dict[str, Any]
    matching: dict[str, Any]
    other: dict[str, Any]


FILTERS = {
    "types": FilterCase({"types": ["workflow"]}, {"kind": "workflow"}, {"kind": "agent"}),
    "types squad": FilterCase({"types": ["squad"]}, {"kind": "squad"}, {"kind": "agent"}),
    "responder_ids": FilterCase(
        {"responder_ids": ["resp-1"]}, {"responder_id": "resp-1"}, {"responder_id": "resp-2"}
    ),
    "agent_ids": FilterCase(
        {"agent_ids": ["agent-1"]}, {"agent_id": "agent-1"}, {"agent_id": "agent-2"}
    ),
    "agent_ids skip workflows": FilterCase(
        {"agent_ids": ["agent-1"]}, {"agent_id": "agent-1"}, {"kind": "workflow"}
    ),
    "workflow_ids": FilterCase(
        {"workflow_ids": ["wf-1"]},
        {"kind": "workflow", "workflow_id": "wf-1"},
        {"kind": "workflow", "workflow_id": "wf-2"},
    ),
    "origin_types": FilterCase(
        {"origin_types": ["chat-message"]}, {"origin_type": "chat-message"}, {"origin_type": "api"}
    ),
    "is_agentic true": FilterCase(
        {"is_agentic": True}, {"is_agentic": True}, {"is_agentic": False}
    ),
    "is_agentic false": FilterCase(
        {"is_agentic": False}, {"is_agentic": False}, {"is_agentic": True}
    ),
    "root_only": FilterCase({"root_only": True}, {"parent_id": None}, {"parent_id": "parent-1"}),
}


def _fires_status(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    r = rule("r", status=["failed"], **when)
    t = transition(execution(status="failed", **kwargs))
    return bool(evaluate_transitions([r], [t], ctx=context()))


def _fires_from_status(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    r = rule("r", from_status=["running"], **when)
    t = transition(execution(status="cancelled", **kwargs))
    return bool(evaluate_transitions([r], [t], ctx=context()))


def _fires_credits(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    r = rule("r", credits_used={"gt": 100}, **when)
    t = transition(execution(status="running", credits=150, **kwargs), kind="credits")
    return bool(evaluate_transitions([r], [t], ctx=context()))


def _fires_duration(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    r = rule("r", duration={"gt": "5m"}, **when)
    t = transition(execution(status="completed", started=0, ended=10, **kwargs))
    return bool(evaluate_transitions([r], [t], ctx=context()))


def _fires_running_for(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    r = rule("r", running_for={"gt": "5m"}, **when)
    state = tracked(execution(status="running", started=0, **kwargs))
    return bool(evaluate_running([r], [state], ctx=context(10)))


def _fires_window(aggregate: dict[str, Any]) -> Any:
    def fires(when: dict[str, Any], kwargs: dict[str, Any]) -> bool:
        r = rule("r", window="15m", **aggregate, **when)
        state = tracked(execution(status="failed", started=0, ended=5, credits=50, **kwargs))
        outcome = evaluate_windows([r], [state], {}, ctx=context(10))
        return [kind for _, kind, _ in outcome.alerts] == ["firing"]

    return fires


RULE_KINDS = {
    "status": _fires_status,
    "from_status": _fires_from_status,
    "credits_used": _fires_credits,
    "duration": _fires_duration,
    "running_for": _fires_running_for,
    "failure_ratio": _fires_window({"failure_ratio": {"gte": 0.5}}),
    "credits_sum": _fires_window({"credits_sum": {"gte": 50}}),
    "count": _fires_window({"count": {"gte": 1, "statuses": ["failed"]}}),
}


@pytest.mark.parametrize("kind", RULE_KINDS)
@pytest.mark.parametrize("case", FILTERS.values(), ids=FILTERS.keys())
def test_every_filter_works_in_every_rule(kind: str, case: FilterCase) -> None:
    fires = RULE_KINDS[kind]
    assert fires(case.when, case.matching), "the matching execution should fire"
    assert not fires(case.when, case.other), "the other execution should not fire"
    assert fires({}, case.other), "without the filter the other execution fires"


def test_filters_combine() -> None:
    when = {"types": ["agent"], "responder_ids": ["resp-1"], "is_agentic": True, "root_only": True}
    assert _fires_status(when, {"is_agentic": True})
    assert not _fires_status(when, {"is_agentic": True, "responder_id": "resp-9"})
    assert not _fires_status(when, {"is_agentic": True, "parent_id": "p"})


def test_status_filter_in_windowed_rules_narrows_the_executions() -> None:
    r = rule("r", window="15m", status=["failed"], count={"gte": 2})
    states = [
        tracked(execution("a", status="failed", ended=5)),
        tracked(execution("b", status="completed", ended=5)),
    ]
    assert evaluate_windows([r], states, {}, ctx=context(10)).alerts == []
    states.append(tracked(execution("c", status="failed", ended=6)))
    assert len(evaluate_windows([r], states, {}, ctx=context(10)).alerts) == 1


# --- labels, links and text ---------------------------------------------------------


def _one(r: RuleSettings, exec_: Execution, **ctx_kwargs: Any) -> Alert:
    [alert] = evaluate_transitions([r], [transition(exec_)], ctx=context(**ctx_kwargs))
    return alert


def test_labels_are_bounded_and_hold_no_execution_id() -> None:
    alert = _one(rule("r", status=["failed"], severity="warning"), execution("exec-42"))
    assert alert.labels == {
        "rule": "r",
        "severity": "warning",
        "source": SOURCE,
        "type": "agent",
        "responder_id": "resp-1",
        "agent_id": "agent-1",
    }
    assert "exec-42" not in alert.labels.values()
    wf = _one(rule("r", status=["failed"]), execution(kind="workflow", workflow_id="wf-9"))
    assert wf.labels["workflow_id"] == "wf-9"
    assert "agent_id" not in wf.labels


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (None, "https://app.zaia.app/executions/exec-7"),
        ("https://zaia.example/{source}/x/{execution_id}", "https://zaia.example/prod/x/exec-7"),
        (
            "https://zaia.example/w/{workspace_id}/r/{responder_id}/e/{execution_id}?t={type}",
            "https://zaia.example/w/ws-1/r/resp-1/e/exec-7?t=agent",
        ),
        ("https://zaia.example/a/{agent_id}", "https://zaia.example/a/agent-1"),
        ("https://zaia.example/{nope}", None),
        ("", None),
    ],
)
def test_link_template(template: str | None, expected: str | None) -> None:
    alert = _one(rule("r", status=["failed"]), execution("exec-7"), link_template=template)
    assert alert.link == expected


def test_running_alerts_have_links_too() -> None:
    state = tracked(execution("exec-8", status="running", started=0))
    [alert] = evaluate_running([rule("stuck", running_for={"gt": "1m"})], [state], ctx=context(5))
    assert alert.link == "https://app.zaia.app/executions/exec-8"


def test_summary_is_one_bounded_line_and_description_has_the_facts() -> None:
    message = "line one\nline two " + "x" * 400
    exec_ = execution(
        "exec-1234567890",
        credits=12.5,
        started=0,
        ended=3.5,
        events=[
            {
                "id": "ev",
                "type": "tool-call",
                "label": "Call ERP",
                "status": "failed",
                "creditsUsed": 0,
                "startedAt": at(0).isoformat(),
                "endedAt": at(1).isoformat(),
                "input": None,
                "output": {"error": message},
                "toolType": "http-request",
                "childExecutionId": None,
            }
        ],
    )
    alert = _one(rule("r", status=["failed"]), exec_)
    assert "\n" not in alert.summary
    assert len(alert.summary) <= 300
    assert alert.summary.startswith(
        "agent execution exec-123 failed at “Call ERP”: line one line two"
    )
    for fragment in (
        "Rule: r (critical)",
        "Source: prod",
        "Execution: exec-1234567890 (agent, failed)",
        "Transition: running -> failed",
        "Responder: resp-1",
        "Agent: agent-1",
        "Credits: 12.5",
        "Duration: 3m30s",
        "Failing step: “Call ERP” (tool-call, tool http-request)",
        "Error: line one",
    ):
        assert fragment in alert.description


def test_custom_templates_and_their_fallback() -> None:
    custom = rule(
        "r",
        status=["failed"],
        summary="{rule}: {type} {short_id} {status} on {responder_id} ({error})",
        description="see {execution_id}",
    )
    exec_ = execution("exec-1234567890", output={"error": "bad"})
    alert = _one(custom, exec_)
    assert alert.summary == "r: agent exec-123 failed on resp-1 (bad)"
    assert alert.description == "see exec-1234567890"
    broken = rule("r", status=["failed"], summary="{missing}", description="{0}")
    alert = _one(broken, exec_)
    assert alert.summary.startswith("agent execution exec-123 failed")
    assert alert.description.startswith("Rule: r (critical)")


def test_severity_and_rule_are_carried() -> None:
    alert = _one(
        rule("cancelled", status=["cancelled"], severity="info"), execution(status="cancelled")
    )
    assert (alert.rule, alert.severity, alert.source) == ("cancelled", "info", SOURCE)
    assert alert.execution is not None
    assert (alert.execution.id, alert.execution.status) == ("exec-1", "cancelled")
    assert alert.cause is None  # cancelled without an error: nothing to name
