"""Table tests of `relay.domain.cause`: the failing step, its error, and the child chain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from relay.domain.alerts import FailureCause
from relay.domain.cause import deepest_cause, error_text, failure_cause, needs_nestings
from relay.domain.models import ExecutionTree
from relay.domain.redact import ELLIPSIS, Redactor
from relay.domain.redact import PII_PLACEHOLDER as REDACTED
from relay.sim import SimWorkspace
from tests.rules_builders import event, execution

REDACTOR = Redactor()


@dataclass(frozen=True)
class Case:
    events: tuple[dict[str, Any], ...]
    output: dict[str, Any] | None
    expected: FailureCause | None


CASES = {
    "iteration names the model": Case(
        events=(
            event(
                type="iteration", label="Iteration 3", llm="gpt-4o-mini", output={"error": "quota"}
            ),
        ),
        output=None,
        expected=FailureCause(
            step_label="Iteration 3",
            step_type="iteration",
            model="gpt-4o-mini",
            error_excerpt="quota",
            chain=("exec-1",),
        ),
    ),
    "tool call names the tool type": Case(
        events=(
            event(label="Search the web", tool_type="web-search", output={"message": "HTTP 502"}),
        ),
        output=None,
        expected=FailureCause(
            step_label="Search the web",
            step_type="tool-call",
            tool_type="web-search",
            error_excerpt="HTTP 502",
            chain=("exec-1",),
        ),
    ),
    "workflow node names the node type": Case(
        events=(
            event(
                type="workflow-node",
                label="Query ERP order",
                node_type="http-request",
                output={"error": {"message": "connection refused", "code": "ECONNREFUSED"}},
            ),
        ),
        output=None,
        expected=FailureCause(
            step_label="Query ERP order",
            step_type="workflow-node",
            node_type="http-request",
            error_excerpt="connection refused",
            chain=("exec-1",),
        ),
    ),
    "unknown event type keeps label and type": Case(
        events=(event(type="guardrail", label="Check policy", output={"error": "blocked"}),),
        output=None,
        expected=FailureCause(
            step_label="Check policy",
            step_type="guardrail",
            error_excerpt="blocked",
            chain=("exec-1",),
        ),
    ),
    "the last failed step is the cause": Case(
        events=(
            event(label="First try", output={"error": "flaky"}, event_id="a"),
            event(label="Recovered", status="completed", output={"ok": True}, event_id="b"),
            event(label="Final", output={"error": "fatal"}, event_id="c"),
        ),
        output=None,
        expected=FailureCause(
            step_label="Final",
            step_type="tool-call",
            tool_type="http-request",
            error_excerpt="fatal",
            chain=("exec-1",),
        ),
    ),
    "step without output falls back to the execution's error": Case(
        events=(event(label="Call", output=None),),
        output={"error": {"message": "execution aborted"}},
        expected=FailureCause(
            step_label="Call",
            step_type="tool-call",
            tool_type="http-request",
            error_excerpt="execution aborted",
            chain=("exec-1",),
        ),
    ),
    "no failed step: the execution's own error": Case(
        events=(event(status="completed", output={"ok": True}),),
        output={"error": "timed out after 300s"},
        expected=FailureCause(
            step_label=None,
            step_type=None,
            error_excerpt="timed out after 300s",
            chain=("exec-1",),
        ),
    ),
    "no failed step and no error: no cause": Case(
        events=(event(status="completed", output={"ok": True}),),
        output={"answer": "fine"},
        expected=None,
    ),
    "no events, no output: no cause": Case(events=(), output=None, expected=None),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_failure_cause(case: Case) -> None:
    exec_ = execution(events=case.events, output=case.output)
    assert failure_cause(exec_, redactor=REDACTOR) == case.expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"error": {"message": "boom", "code": "E1"}}, "boom"),
        ({"error": {"code": "E1", "status": 500}}, '{"code":"E1","status":500}'),
        ({"error": "plain"}, "plain"),
        ({"message": "top-level message"}, "top-level message"),
        ({"status": 503, "body": "unavailable"}, '{"status":503,"body":"unavailable"}'),
        ({"error": ""}, '{"error":""}'),
        ({}, None),
        (None, None),
        (["a", 1], '["a",1]'),
    ],
)
def test_error_text(output: Any, expected: str | None) -> None:
    assert error_text(output) == expected


def test_error_excerpt_is_redacted_and_bounded() -> None:
    huge = "stack frame at ana@example.com with sk-abcdefghijklmnopqrstuvwxyz0123 " * 800
    exec_ = execution(events=(event(output={"error": {"message": huge}}),))
    cause = failure_cause(exec_, redactor=REDACTOR)
    assert cause is not None
    assert cause.error_excerpt is not None
    assert len(cause.error_excerpt) == 500
    assert cause.error_excerpt.endswith(ELLIPSIS)
    assert "ana@example.com" not in cause.error_excerpt
    assert "sk-abcdef" not in cause.error_excerpt
    assert REDACTED in cause.error_excerpt


def test_a_whole_50kb_output_is_compacted_then_bounded() -> None:
    output = {"rows": [{"email": f"user{i}@example.com", "note": "x" * 40} for i in range(600)]}
    assert len(json.dumps(output)) > 50_000
    exec_ = execution(events=(event(output=output),))
    cause = failure_cause(exec_, redactor=Redactor(excerpt_chars=200))
    assert cause is not None
    assert cause.error_excerpt is not None
    assert len(cause.error_excerpt) == 200
    assert "@example.com" not in cause.error_excerpt


def test_inputs_are_never_read() -> None:
    secret_input = {"message": "my card is 4111 1111 1111 1111", "token": "INPUT-SECRET"}
    exec_ = execution(
        events=(event(input=secret_input, output=None),),
        input=secret_input,
        output=None,
    )
    cause = failure_cause(exec_, redactor=REDACTOR)
    assert cause is not None
    assert "INPUT-SECRET" not in repr(cause)
    assert "4111" not in repr(cause)
    assert cause.error_excerpt is None


# --- nestings -----------------------------------------------------------------------


def test_needs_nestings_follows_a_failing_step_with_a_child() -> None:
    exec_ = execution(events=(event(child_execution_id="child-1", output={"error": "x"}),))
    cause = failure_cause(exec_, redactor=REDACTOR)
    assert needs_nestings(cause, exec_) == "child-1"


@pytest.mark.parametrize(
    "events",
    [
        (event(output={"error": "no child"}),),
        (event(type="iteration", output={"error": "model"}),),
        (event(status="completed", child_execution_id="child-1", output={"ok": True}),),
    ],
)
def test_needs_nestings_is_none_without_a_failing_child(events: tuple[dict[str, Any]]) -> None:
    exec_ = execution(events=events, output={"error": "x"})
    cause = failure_cause(exec_, redactor=REDACTOR)
    assert needs_nestings(cause, exec_) is None


def test_needs_nestings_is_none_when_already_followed_or_no_cause() -> None:
    exec_ = execution(events=(event(child_execution_id="child-1", output={"error": "x"}),))
    followed = FailureCause(step_label="deep", step_type="tool-call", chain=("exec-1", "child-1"))
    assert needs_nestings(followed, exec_) is None
    assert needs_nestings(None, exec_) is None


def _sim_chain(depth: int) -> tuple[SimWorkspace, list[str]]:
    """A root agent whose failure comes from a chain of `depth` failing descendants."""
    sim = SimWorkspace(seed=7)
    ids = [sim.create_execution(kind="agent", status="running")]
    for level in range(depth):
        ids.append(sim.spawn_child(ids[-1], kind="workflow" if level % 2 == 0 else "agent"))
    sim.set_status(ids[-1], "failed", error="ERP said no to ana@example.com")
    for execution_id in reversed(ids[:-1]):
        sim.set_status(execution_id, "failed")
    return sim, ids


def test_deepest_cause_follows_the_chain_through_the_tree() -> None:
    sim, ids = _sim_chain(3)
    root = ExecutionTree.model_validate(sim.raw_tree(ids[0]))
    shallow = failure_cause(root, redactor=REDACTOR)
    assert needs_nestings(shallow, root) == ids[1]
    cause = deepest_cause(root, redactor=REDACTOR)
    assert cause is not None
    assert cause.chain == tuple(ids)
    assert cause.error_excerpt == f"ERP said no to {REDACTED}"
    deepest = ExecutionTree.model_validate(sim.raw(ids[-1]))
    own = failure_cause(deepest, redactor=REDACTOR)
    assert own is not None
    assert (cause.step_label, cause.step_type) == (own.step_label, own.step_type)


@pytest.mark.parametrize("max_depth", [0, 1, 2])
def test_deepest_cause_stops_at_max_depth(max_depth: int) -> None:
    sim, ids = _sim_chain(4)
    root = ExecutionTree.model_validate(sim.raw_tree(ids[0]))
    cause = deepest_cause(root, redactor=REDACTOR, max_depth=max_depth)
    assert cause is not None
    assert cause.chain == tuple(ids[: max_depth + 1])


def _tree(node: dict[str, Any], children: list[Any]) -> dict[str, Any]:
    return node | {"children": children}


def _raw(exec_id: str, *, events: tuple[dict[str, Any], ...], parent: str | None) -> dict[str, Any]:
    return execution(exec_id, events=events, parent_id=parent).model_dump(
        by_alias=True, mode="json"
    )


def test_deepest_cause_stops_at_a_child_missing_from_the_tree() -> None:
    root = _raw(
        "root", events=(event(child_execution_id="gone", output={"error": "x"}),), parent=None
    )
    tree = ExecutionTree.model_validate(_tree(root, [None]))
    cause = deepest_cause(tree, redactor=REDACTOR)
    assert cause is not None
    assert cause.chain == ("root",)


def test_deepest_cause_stops_at_a_child_without_a_failure() -> None:
    root = _raw(
        "root", events=(event(child_execution_id="kid", output={"error": "x"}),), parent=None
    )
    kid = _raw("kid", events=(event(status="completed", output={"ok": True}),), parent="root")
    tree = ExecutionTree.model_validate(_tree(root, [_tree(kid, [])]))
    cause = deepest_cause(tree, redactor=REDACTOR)
    assert cause is not None
    assert cause.chain == ("root",)
    assert cause.error_excerpt == "x"


def test_deepest_cause_survives_a_cycle() -> None:
    a = _raw("a", events=(event(child_execution_id="b", output={"error": "in a"}),), parent=None)
    b = _raw("b", events=(event(child_execution_id="a", output={"error": "in b"}),), parent="a")
    tree = ExecutionTree.model_validate(_tree(a, [_tree(b, [])]))
    cause = deepest_cause(tree, redactor=REDACTOR)
    assert cause is not None
    assert cause.chain == ("a", "b")
    assert cause.error_excerpt == "in b"


def test_deepest_cause_of_a_tree_without_failure_is_none() -> None:
    root = _raw("root", events=(event(status="completed", output={"ok": True}),), parent=None)
    assert deepest_cause(ExecutionTree.model_validate(_tree(root, [])), redactor=REDACTOR) is None
