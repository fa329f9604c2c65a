"""Builders for rule-engine tests: executions as the API sends them, transitions, rules.

Times are minutes after `T0`. Executions are parsed with `Execution.model_validate`
from API-shaped dicts, so the tests exercise the same models the relay uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from relay.domain.models import Execution
from relay.domain.rules import RuleContext
from relay.domain.state import TrackedExecution, Transition
from relay.settings import RuleSettings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SOURCE = "prod"
TERMINAL = ("completed", "failed", "cancelled")

_ORIGINS: dict[str, dict[str, Any]] = {
    "api": {"type": "api", "apiKeyId": "key-1"},
    "chat-message": {"type": "chat-message", "chatMessageId": "msg-1"},
    "delegation": {"type": "delegation", "agentId": "agent-0"},
    "agentic-execution-node": {"type": "agentic-execution-node", "workflowNodeId": "node-0"},
    "webhook-request": {"type": "webhook-request", "workflowTriggerId": "trigger-1"},
    "agent-tool-request": {"type": "agent-tool-request", "workflowTriggerId": "trigger-2"},
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float) -> str:
    return at(minutes).isoformat()


def event(
    *,
    type: str = "tool-call",
    label: str = "Call the CRM",
    status: str = "failed",
    output: Any = None,
    input: Any = None,
    child_execution_id: str | None = None,
    tool_type: str = "http-request",
    node_type: str = "http-request",
    llm: str = "gpt-4o",
    event_id: str = "ev-1",
) -> dict[str, Any]:
    """One step of an execution, API-shaped."""
    raw: dict[str, Any] = {
        "id": event_id,
        "type": type,
        "label": label,
        "status": status,
        "creditsUsed": 0.0,
        "startedAt": iso(0),
        "endedAt": iso(1),
        "input": input,
        "output": output,
    }
    if type == "iteration":
        raw |= {"llm": llm, "llmProvider": {"id": None, "name": "OpenAI"}}
    elif type == "tool-call":
        raw |= {"toolType": tool_type, "childExecutionId": child_execution_id}
    elif type == "workflow-node":
        raw |= {
            "nodeType": node_type,
            "workflowNodeId": "node-1",
            "childExecutionId": child_execution_id,
        }
    return raw


def execution(
    execution_id: str = "exec-1",
    *,
    status: str = "failed",
    kind: str = "agent",
    responder_id: str = "resp-1",
    agent_id: str = "agent-1",
    workflow_id: str = "wf-1",
    parent_id: str | None = None,
    origin_type: str | None = None,
    is_agentic: bool = False,
    is_purged: bool = False,
    credits: float = 0.0,
    started: float = 0.0,
    ended: float | None = None,
    updated: float | None = None,
    events: Sequence[dict[str, Any]] = (),
    input: dict[str, Any] | None = None,
    output: dict[str, Any] | None = None,
    workspace_id: str = "ws-1",
) -> Execution:
    """An execution as the API sends it. A terminal one ends at `started + 1` by default."""
    if ended is None and status in TERMINAL:
        ended = started + 1
    if status == "running":
        ended = None
    if updated is None:
        updated = ended if ended is not None else started
    origin = origin_type or ("webhook-request" if kind == "workflow" else "api")
    detail: dict[str, Any] = {
        "events": list(events),
        "origin": _ORIGINS[origin],
        "input": input if input is not None else {"message": "hello"},
        "output": output,
    }
    if kind == "workflow":
        detail |= {
            "type": "workflow-execution",
            "workflowId": workflow_id,
            "workflowImplementationId": "impl-1",
        }
    elif kind == "squad":
        detail |= {"type": "squad-execution", "agentId": agent_id, "squadId": "squad-1"}
    else:
        detail |= {"type": "agent-execution", "agentId": agent_id}
    raw = {
        "id": execution_id,
        "workspaceId": workspace_id,
        "responderId": responder_id,
        "parentId": parent_id,
        "status": status,
        "isAgentic": is_agentic,
        "isPurged": is_purged,
        "creditsUsed": credits,
        "createdAt": iso(started),
        "updatedAt": iso(updated),
        "startedAt": iso(started),
        "endedAt": None if ended is None else iso(ended),
        "detail": detail,
    }
    return Execution.model_validate(raw)


def transition(
    exec_: Execution,
    *,
    from_status: str = "running",
    kind: str = "status",
    credits_before: float = 0.0,
    alertable: bool = True,
    observed: float | None = None,
    source: str = SOURCE,
) -> Transition:
    """The transition that led to `exec_` (its status and credits are the new ones)."""
    if observed is None:
        observed = (exec_.updated_at - T0).total_seconds() / 60
    return Transition(
        source=source,
        execution_id=exec_.id,
        kind="credits" if kind == "credits" else "status",
        from_status=exec_.status if kind == "credits" else from_status,
        to_status=exec_.status,
        credits_before=credits_before,
        credits_after=exec_.credits_used,
        observed_at=at(observed),
        alertable=alertable,
        execution=exec_,
    )


def tracked(exec_: Execution, *, seen: float = 0.0, source: str = SOURCE) -> TrackedExecution:
    return TrackedExecution.from_execution(exec_, source=source, now=at(seen))


def rule(
    name: str = "rule-1",
    *,
    severity: str = "critical",
    sinks: Sequence[str] = ("oncall",),
    window: str | None = None,
    group_by: Sequence[str] = (),
    repeat_interval: str | None = None,
    include_input: bool = False,
    summary: str | None = None,
    description: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **when: Any,
) -> RuleSettings:
    raw: dict[str, Any] = {
        "name": name,
        "severity": severity,
        "sinks": list(sinks),
        "when": when,
        "group_by": list(group_by),
        "include_input": include_input,
    }
    for key, value in (
        ("window", window),
        ("repeat_interval", repeat_interval),
        ("summary", summary),
        ("description", description),
        ("labels", labels),
        ("annotations", annotations),
    ):
        if value is not None:
            raw[key] = value
    return RuleSettings.model_validate(raw)


def context(
    now: float = 0.0,
    *,
    link_template: str | None = None,
    source: str = SOURCE,
    responder_names: dict[str, str] | None = None,
) -> RuleContext:
    names = responder_names or {}
    if link_template is None:
        return RuleContext(source=source, now=at(now), responder_names=names)
    return RuleContext(
        source=source, now=at(now), link_template=link_template, responder_names=names
    )
