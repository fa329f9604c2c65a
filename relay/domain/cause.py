"""Why an execution failed: the failing step, its error, and the child it led to.

Invariants:
- Inputs are never read: a cause is built from event metadata (label, type, tool or
  node type, model) and error *outputs* only, and the error excerpt is redacted and
  bounded by the `Redactor` before it leaves this module.
- The failing step of an execution is its last failed event: an execution stops at the
  step that failed it, while earlier failed steps are ones it recovered from.
- `chain` starts at the execution the cause is about and ends at the execution that
  holds the failing step; following children stops at `max_depth` levels, at a child
  the tree does not include, at a child without a failure, or at a cycle.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from relay.domain.alerts import FailureCause
from relay.domain.models import (
    Event,
    Execution,
    ExecutionTree,
    IterationEvent,
    ToolCallEvent,
    WorkflowNodeEvent,
)
from relay.domain.redact import Redactor

DEFAULT_MAX_DEPTH = 5

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "child_of",
    "compact_json",
    "deepest_cause",
    "error_text",
    "failed_event",
    "failure_cause",
    "needs_nestings",
]


def failed_event(execution: Execution) -> Event | None:
    """The step that failed the execution (its last failed event), if any."""
    for event in reversed(execution.events):
        if event.status == "failed":
            return event
    return None


def child_of(event: Event | None) -> str | None:
    """The child execution a step ran, if it ran one."""
    if isinstance(event, ToolCallEvent | WorkflowNodeEvent):
        return event.child_execution_id
    return None


def error_text(output: Any) -> str | None:
    """The error message of an output: `error.message`, `error` (a string, or compact
    JSON), `message`, else the whole output as compact JSON."""
    if output is None or output == {}:
        return None
    if not isinstance(output, dict):
        return compact_json(output)
    error = output.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return message if isinstance(message, str) and message else compact_json(error)
    if isinstance(error, str) and error:
        return error
    message = output.get("message")
    if isinstance(message, str) and message:
        return message
    return compact_json(output)


def failure_cause(execution: Execution, *, redactor: Redactor) -> FailureCause | None:
    """The failing step of `execution` and a bounded, redacted excerpt of its error.

    Without a failed step, the execution's own `output.error` is the cause (no step);
    without either, there is no cause (None).
    """
    event = failed_event(execution)
    own_error = _own_error(execution)
    if event is None:
        if own_error is None:
            return None
        return FailureCause(
            step_label=None,
            step_type=None,
            error_excerpt=redactor.excerpt(own_error),
            chain=(execution.id,),
        )
    text = error_text(event.output) or own_error
    return FailureCause(
        step_label=event.label,
        step_type=event.type,
        tool_type=event.tool_type if isinstance(event, ToolCallEvent) else None,
        node_type=event.node_type if isinstance(event, WorkflowNodeEvent) else None,
        model=event.llm if isinstance(event, IterationEvent) else None,
        error_excerpt=None if text is None else redactor.excerpt(text),
        chain=(execution.id,),
    )


def needs_nestings(cause: FailureCause | None, execution: Execution) -> str | None:
    """The child execution the failing step points to, when the cause stops short of it.

    A non-None answer means: fetch `/nestings?executionId=<execution.id>` (the tree is
    rooted at the id asked for) and call `deepest_cause` on it.
    """
    if cause is None or len(cause.chain) > 1:
        return None
    return child_of(failed_event(execution))


def deepest_cause(
    tree: ExecutionTree, *, redactor: Redactor, max_depth: int = DEFAULT_MAX_DEPTH
) -> FailureCause | None:
    """Follow failing steps through `childExecutionId` to the deepest failing step.

    The cause names that step; its `chain` lists the ids from `tree` down to it.
    """
    by_id = {node.id: node for node in tree.walk()}
    node: ExecutionTree = tree
    cause = failure_cause(tree, redactor=redactor)
    if cause is None:
        return None
    chain = [tree.id]
    while len(chain) <= max_depth:
        child_id = child_of(failed_event(node))
        child = by_id.get(child_id) if child_id is not None else None
        if child is None or child.id in chain:
            break
        child_cause = failure_cause(child, redactor=redactor)
        if child_cause is None:
            break
        node, cause = child, child_cause
        chain.append(child.id)
    return replace(cause, chain=tuple(chain))


def _own_error(execution: Execution) -> str | None:
    output = execution.detail.output
    if not output or "error" not in output:
        return None
    return error_text({"error": output["error"]})


def compact_json(value: Any) -> str:
    """JSON on one line without spaces (the shortest faithful text of an output)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except ValueError:  # circular structures cannot come from JSON, but be safe
        return str(value)
