"""Parent/child noise, failure causes in alerts, and inputs (opt-in only)."""

from __future__ import annotations

import itertools

import pytest

from relay.domain.alerts import Alert, FailureCause, execution_alert_id
from relay.domain.models import Execution
from relay.domain.redact import ELLIPSIS, Redactor
from relay.domain.redact import PII_PLACEHOLDER as REDACTED
from relay.domain.rules import RuleContext, evaluate_transitions
from relay.settings import AlertsSettings, RuleSettings
from relay.sim import SimWorkspace
from tests.rules_builders import SOURCE, at, context, event, execution, rule, transition

FAILED = rule("failed", status=["failed"])
FAILED_OR_CANCELLED = rule("bad", status=["failed", "cancelled"])
ROOT_ONLY = rule("root-failed", status=["failed"], root_only=True)


def _batch(*executions: Execution) -> list[Alert]:
    return evaluate_transitions([FAILED], [transition(e) for e in executions], ctx=context())


def _chain_of(alert: Alert) -> tuple[str, ...]:
    assert alert.cause is not None
    return alert.cause.chain


def _sim_cascade() -> tuple[SimWorkspace, str, str, str]:
    """root agent -> child workflow -> grandchild agent, failing bottom-up."""
    sim = SimWorkspace(seed=3)
    root = sim.create_execution(kind="agent", status="running")
    child = sim.spawn_child(root, kind="workflow")
    grandchild = sim.spawn_child(child, kind="agent")
    sim.set_status(grandchild, "failed", error="CRM timeout for ana@example.com")
    sim.set_status(child, "failed")
    sim.set_status(root, "failed")
    return sim, root, child, grandchild


def test_a_cascade_in_one_batch_gives_one_alert_for_the_root_naming_the_chain() -> None:
    sim, root, child, grandchild = _sim_cascade()
    executions = [Execution.model_validate(sim.raw(i)) for i in (root, child, grandchild)]
    for order in itertools.permutations(executions):
        [alert] = _batch(*order)
        assert alert.id == execution_alert_id(rule="failed", source=SOURCE, execution_id=root)
        assert alert.execution is not None
        assert alert.execution.id == root
        assert _chain_of(alert) == (root, child, grandchild)
        assert f"in child {child[:8]} -> {grandchild[:8]}" in alert.summary
        assert f"CRM timeout for {REDACTED}" in alert.summary
        assert f"Chain: {root} -> {child} -> {grandchild}" in alert.description
        listed = ", ".join(sorted((child, grandchild)))
        also = f"Also failed in the same cycle: 2 descendant executions ({listed})"
        assert also in alert.description


def test_the_chain_follows_the_child_the_failing_step_points_to() -> None:
    step = event(child_execution_id="kid-b", output={"error": "kid-b broke"})
    root = execution("root", events=[step])
    kid_a = execution("kid-a", parent_id="root", output={"error": "a"})
    kid_b = execution("kid-b", parent_id="root", output={"error": "b"})
    [alert] = _batch(kid_a, root, kid_b)
    assert _chain_of(alert) == ("root", "kid-b")
    assert (
        "Also failed in the same cycle: 2 descendant executions (kid-a, kid-b)" in alert.description
    )


def test_without_a_pointer_the_chain_takes_the_smallest_child_id() -> None:
    root = execution("root")
    [alert] = _batch(
        execution("kid-z", parent_id="root"), root, execution("kid-c", parent_id="root")
    )
    assert _chain_of(alert) == ("root", "kid-c")


def test_a_failing_child_alone_alerts_for_itself() -> None:
    [alert] = _batch(execution("kid", parent_id="root", output={"error": "alone"}))
    assert alert.execution is not None
    assert alert.execution.id == "kid"
    assert _chain_of(alert) == ("kid",)


def test_a_parent_that_completed_does_not_absorb_a_failing_child() -> None:
    parent = execution("root", status="completed")
    kid = execution("kid", parent_id="root")
    alerts = evaluate_transitions([FAILED], [transition(parent), transition(kid)], ctx=context())
    assert [a.execution.id for a in alerts if a.execution] == ["kid"]


def test_a_gap_in_the_batch_ends_the_cascade() -> None:
    grandparent = execution("gp")
    kid = execution("kid", parent_id="p")  # its parent "p" is not in this batch
    alerts = _batch(grandparent, kid)
    assert sorted(a.execution.id for a in alerts if a.execution) == ["gp", "kid"]


def test_cancellations_cascade_too() -> None:
    root = execution("root", status="cancelled")
    kid = execution("kid", status="cancelled", parent_id="root")
    [alert] = evaluate_transitions(
        [FAILED_OR_CANCELLED], [transition(kid), transition(root)], ctx=context()
    )
    assert alert.execution is not None
    assert alert.execution.id == "root"


def test_a_rule_matching_only_the_child_alerts_for_the_child() -> None:
    workflows = rule("wf-failed", status=["failed"], types=["workflow"])
    root = execution("root")
    kid = execution("kid", kind="workflow", parent_id="root")
    [alert] = evaluate_transitions([workflows], [transition(root), transition(kid)], ctx=context())
    assert alert.execution is not None
    assert alert.execution.id == "kid"


def test_root_only_suppresses_child_alerts_entirely() -> None:
    kid = execution("kid", parent_id="root")
    assert evaluate_transitions([ROOT_ONLY], [transition(kid)], ctx=context()) == []
    root = execution("root")
    [alert] = evaluate_transitions([ROOT_ONLY], [transition(kid), transition(root)], ctx=context())
    assert alert.execution is not None
    assert alert.execution.id == "root"


def test_credits_alerts_do_not_fold() -> None:
    expensive = rule("expensive", credits_used={"gt": 10})
    root = execution("root", credits=50)
    kid = execution("kid", credits=20, parent_id="root")
    alerts = evaluate_transitions([expensive], [transition(root), transition(kid)], ctx=context())
    assert sorted(a.execution.id for a in alerts if a.execution) == ["kid", "root"]


def test_a_cause_resolved_through_nestings_wins() -> None:
    deep = FailureCause(
        step_label="Deep step",
        step_type="tool-call",
        error_excerpt="deep",
        chain=("root", "x", "y"),
    )
    [alert] = evaluate_transitions(
        [FAILED], [transition(execution("root"))], ctx=context(), causes={"root": deep}
    )
    assert alert.cause == deep
    assert "in child x -> y at “Deep step”: deep" in alert.summary


def test_a_given_cause_of_the_deepest_child_extends_the_batch_chain() -> None:
    kid_cause = FailureCause(step_label="s", step_type="tool-call", chain=("kid", "far"))
    alerts = evaluate_transitions(
        [FAILED],
        [transition(execution("root")), transition(execution("kid", parent_id="root"))],
        ctx=context(),
        causes={"kid": kid_cause},
    )
    [alert] = alerts
    assert _chain_of(alert) == ("root", "kid", "far")


def test_a_cascade_whose_child_has_no_cause_still_names_the_child() -> None:
    root = execution("root", output={"error": "root error"})
    kid = execution("kid", parent_id="root")  # no events, no output
    [alert] = _batch(root, kid)
    assert _chain_of(alert) == ("root", "kid")
    assert alert.cause is not None
    assert alert.cause.error_excerpt == "root error"


def test_a_failed_alert_names_the_failing_step() -> None:
    step = event(
        type="iteration",
        label="Iteration 2",
        llm="claude-sonnet",
        output={"error": {"message": "context too long"}},
    )
    [alert] = _batch(execution(events=[step]))
    assert alert.cause == FailureCause(
        step_label="Iteration 2",
        step_type="iteration",
        model="claude-sonnet",
        error_excerpt="context too long",
        chain=("exec-1",),
    )
    assert "Failing step: “Iteration 2” (iteration, model claude-sonnet)" in alert.description


def test_completed_executions_carry_no_cause() -> None:
    step = event(label="retried", output={"error": "flaky"})
    done = rule("done", status=["completed"])
    [alert] = evaluate_transitions(
        [done], [transition(execution(status="completed", events=[step]))], ctx=context()
    )
    assert alert.cause is None


# --- inputs -------------------------------------------------------------------------

SECRET_INPUT = {
    "message": "my e-mail is ana@example.com, key sk-abcdefghijklmnopqrstuvwxyz0123",
    "blob": "z" * 50_000,
}


def _alert_for_input(r: RuleSettings, *, excerpt_chars: int = 500) -> Alert:
    step = event(input={"query": "STEP-INPUT-MARKER"}, output={"error": "bad"})
    exec_ = execution(events=[step], input=SECRET_INPUT)
    ctx = RuleContext(source=SOURCE, now=at(0), redactor=Redactor(excerpt_chars=excerpt_chars))
    [alert] = evaluate_transitions([r], [transition(exec_)], ctx=ctx)
    return alert


def test_inputs_are_never_included_by_default() -> None:
    alert = _alert_for_input(FAILED)
    text = repr(alert)
    assert "Input:" not in alert.description
    assert "my e-mail is" not in text
    assert "zzzz" not in text
    assert "STEP-INPUT-MARKER" not in text


@pytest.mark.parametrize("excerpt_chars", [500, 80])
def test_a_rule_may_opt_in_to_a_bounded_redacted_input_excerpt(excerpt_chars: int) -> None:
    opted = rule("with-input", status=["failed"], include_input=True)
    alert = _alert_for_input(opted, excerpt_chars=excerpt_chars)
    [line] = [line for line in alert.description.splitlines() if line.startswith("Input: ")]
    excerpt = line.removeprefix("Input: ")
    assert len(excerpt) == excerpt_chars
    assert excerpt.endswith(ELLIPSIS)
    assert "ana@example.com" not in excerpt
    assert "sk-abcdefghij" not in excerpt
    assert "STEP-INPUT-MARKER" not in alert.description  # steps' inputs: never


def test_input_is_omitted_when_excerpts_are_disabled() -> None:
    opted = rule("with-input", status=["failed"], include_input=True)
    assert "Input:" not in _alert_for_input(opted, excerpt_chars=0).description


def test_a_wide_cascade_lists_ten_descendants_and_counts_the_rest() -> None:
    kids = [execution(f"kid-{i:02d}", parent_id="root") for i in range(14)]
    [alert] = _batch(execution("root"), *kids)
    listed = ", ".join(f"kid-{i:02d}" for i in range(10))
    expected = f"Also failed in the same cycle: 14 descendant executions ({listed} and 4 more)"
    assert expected in alert.description


def test_rule_context_from_settings() -> None:
    alerts = AlertsSettings.model_validate(
        {
            "link_template": "https://x.example/{execution_id}",
            "excerpt_chars": 20,
            "redactions": ["ORDER-\\d+"],
        }
    )
    ctx = RuleContext.from_settings(alerts, source=SOURCE, now=at(0))
    exec_ = execution("e-1", output={"error": "ORDER-42 failed for a very long reason indeed"})
    [alert] = evaluate_transitions([FAILED], [transition(exec_)], ctx=ctx)
    assert alert.link == "https://x.example/e-1"
    assert alert.cause is not None
    assert alert.cause.error_excerpt == f"{REDACTED} failed f…"
