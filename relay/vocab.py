"""The shared words of the relay: one definition of each name several layers use.

Every `Literal` here has a tuple beside it (`SEVERITIES`, `EXECUTION_STATUSES`, ...)
made from it with `get_args`, so code that enumerates the values (metrics that
pre-create their label sets, validators) cannot drift from the type.
"""

from __future__ import annotations

from typing import Literal, get_args

ExecutionStatus = Literal["running", "completed", "failed", "cancelled"]
EventStatus = Literal["running", "completed", "failed"]
ExecutionKind = Literal["agent", "squad", "workflow"]
# "unknown" is the status of an execution the relay sees for the first time.
FromStatus = Literal["unknown", "running", "completed", "failed", "cancelled"]
Severity = Literal["critical", "warning", "info"]
AlertState = Literal["firing", "resolved"]
NotificationKind = Literal["firing", "reminder", "resolved", "test"]
# What became of one poll cycle, as `relay.pipeline.poller.Poller.run_one` reports it;
# "standby": skipped, another replica polls the source.
CycleOutcome = Literal["ok", "standby", "unauthorized", "source_error", "store_error", "timeout"]
# What became of notifications at their turn to be sent; "silenced": a silence matched.
NotificationOutcome = Literal["delivered", "retry", "dead", "silenced"]

EXECUTION_STATUSES: tuple[ExecutionStatus, ...] = get_args(ExecutionStatus)
EXECUTION_KINDS: tuple[ExecutionKind, ...] = get_args(ExecutionKind)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
ALERT_STATES: tuple[AlertState, ...] = get_args(AlertState)
CYCLE_OUTCOMES: tuple[CycleOutcome, ...] = get_args(CycleOutcome)
NOTIFICATION_OUTCOMES: tuple[NotificationOutcome, ...] = get_args(NotificationOutcome)
# Where a delivery worker contained an error of its own: a whole step, or settling one
# message (`zaia_relay_delivery_errors_total`).
DeliveryErrorStage = Literal["step", "settle"]
DELIVERY_ERROR_STAGES: tuple[DeliveryErrorStage, ...] = get_args(DeliveryErrorStage)
TERMINAL_STATUSES: frozenset[ExecutionStatus] = frozenset({"completed", "failed", "cancelled"})
# Labels the relay sets on every alert it can (`relay.domain.render_text`, and the
# Alertmanager sink's `alertname`/`alert_id`): a rule's own `labels` cannot replace them.
RESERVED_LABELS: frozenset[str] = frozenset(
    {
        "rule",
        "severity",
        "source",
        "type",
        "responder_id",
        "responder",
        "agent_id",
        "workflow_id",
        "alertname",
        "alert_id",
    }
)
# Annotations the Alertmanager sink sets from the alert itself; a rule's own
# `annotations` cannot replace them (a rule has `summary`/`description` templates).
RESERVED_ANNOTATIONS: frozenset[str] = frozenset(
    {"summary", "description", "execution_id", "error", "link"}
)
# The annotation Slack (and the status page) show as a "Runbook" link.
RUNBOOK_ANNOTATION = "runbook_url"
