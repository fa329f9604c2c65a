"""Typed views of the Zaia executions API (see tests/data/zaia-executions.openapi.json).

Invariants:
- Models are frozen and ignore unknown fields: the API is alpha and will grow.
- Timestamps are timezone-aware UTC `datetime`s.
- An event of a type this version does not know parses as `UnknownEvent` instead of
  failing the whole execution; an unknown detail type does fail the item (the caller
  skips and counts it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic.alias_generators import to_camel

from relay.clock import ApiUtcDatetime
from relay.vocab import TERMINAL_STATUSES, EventStatus, ExecutionKind, ExecutionStatus

JsonObject = dict[str, Any]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# --- events -------------------------------------------------------------------------


class _EventBase(ApiModel):
    id: str
    label: str
    status: EventStatus
    credits_used: float = Field(ge=0)
    started_at: ApiUtcDatetime
    ended_at: ApiUtcDatetime | None
    # The spec allows any JSON value here (`{nullable: true}` has no type).
    input: Any = None
    output: JsonObject | None


class LlmProvider(ApiModel):
    id: str | None
    name: str


class IterationEvent(_EventBase):
    type: Literal["iteration"]
    llm: str
    llm_provider: LlmProvider


class ToolCallEvent(_EventBase):
    type: Literal["tool-call"]
    child_execution_id: str | None
    tool_type: str


class WorkflowNodeEvent(_EventBase):
    type: Literal["workflow-node"]
    child_execution_id: str | None
    node_type: str
    workflow_node_id: str


class UnknownEvent(_EventBase):
    """An event type added upstream after this version; kept so its status still counts."""

    type: str


def _event_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("iteration", "tool-call", "workflow-node") else "unknown"


AgentEvent = Annotated[
    Annotated[IterationEvent, Tag("iteration")]
    | Annotated[ToolCallEvent, Tag("tool-call")]
    | Annotated[WorkflowNodeEvent, Tag("workflow-node")]
    | Annotated[UnknownEvent, Tag("unknown")],
    Discriminator(_event_tag),
]
Event = IterationEvent | ToolCallEvent | WorkflowNodeEvent | UnknownEvent


# --- origins ------------------------------------------------------------------------


class ApiOrigin(ApiModel):
    type: Literal["api"]
    api_key_id: str


class ChatMessageOrigin(ApiModel):
    type: Literal["chat-message"]
    chat_message_id: str


class DelegationOrigin(ApiModel):
    type: Literal["delegation"]
    agent_id: str


class AgenticExecutionNodeOrigin(ApiModel):
    type: Literal["agentic-execution-node"]
    workflow_node_id: str


class WebhookRequestOrigin(ApiModel):
    type: Literal["webhook-request"]
    workflow_trigger_id: str


class AgentToolRequestOrigin(ApiModel):
    type: Literal["agent-tool-request"]
    workflow_trigger_id: str


AgentOrigin = Annotated[
    ApiOrigin | ChatMessageOrigin | DelegationOrigin | AgenticExecutionNodeOrigin,
    Field(discriminator="type"),
]
WorkflowOrigin = Annotated[
    WebhookRequestOrigin | AgentToolRequestOrigin, Field(discriminator="type")
]


# --- details ------------------------------------------------------------------------


class _DetailBase(ApiModel):
    input: JsonObject
    output: JsonObject | None


class AgentExecutionDetail(_DetailBase):
    type: Literal["agent-execution"]
    agent_id: str
    events: list[AgentEvent]
    origin: AgentOrigin


class SquadExecutionDetail(_DetailBase):
    type: Literal["squad-execution"]
    agent_id: str
    squad_id: str
    events: list[AgentEvent]
    origin: AgentOrigin


class WorkflowExecutionDetail(_DetailBase):
    type: Literal["workflow-execution"]
    workflow_id: str
    workflow_implementation_id: str
    events: list[AgentEvent]
    origin: WorkflowOrigin


ExecutionDetail = Annotated[
    AgentExecutionDetail | SquadExecutionDetail | WorkflowExecutionDetail,
    Field(discriminator="type"),
]

_KIND_BY_DETAIL: dict[str, ExecutionKind] = {
    "agent-execution": "agent",
    "squad-execution": "squad",
    "workflow-execution": "workflow",
}


# --- executions ---------------------------------------------------------------------


class Execution(ApiModel):
    id: str
    workspace_id: str
    responder_id: str
    parent_id: str | None
    status: ExecutionStatus
    is_agentic: bool
    is_purged: bool
    credits_used: float = Field(ge=0)
    created_at: ApiUtcDatetime
    updated_at: ApiUtcDatetime
    started_at: ApiUtcDatetime
    ended_at: ApiUtcDatetime | None
    detail: ExecutionDetail

    @property
    def kind(self) -> ExecutionKind:
        return _KIND_BY_DETAIL[self.detail.type]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def agent_id(self) -> str | None:
        return getattr(self.detail, "agent_id", None)

    @property
    def squad_id(self) -> str | None:
        return getattr(self.detail, "squad_id", None)

    @property
    def workflow_id(self) -> str | None:
        return getattr(self.detail, "workflow_id", None)

    @property
    def origin_type(self) -> str:
        return self.detail.origin.type

    @property
    def events(self) -> list[Event]:
        return list(self.detail.events)


class ExecutionTree(Execution):
    """An execution with its descendants, as `/api/v1/executions/nestings` returns it."""

    # The documented schema stops describing children a few levels down (they become
    # `nullable`), so deeper levels are accepted as null and dropped.
    children: list[ExecutionTree | None] = Field(default_factory=list)

    def walk(self) -> list[ExecutionTree]:
        """This node and every descendant, depth first."""
        found: list[ExecutionTree] = [self]
        for child in self.children:
            if child is not None:
                found.extend(child.walk())
        return found


# --- errors -------------------------------------------------------------------------


class ErrorCta(ApiModel):
    type: str
    url: str


class ApiErrorBody(ApiModel):
    """The documented error body ("a known exception") of every non-2xx answer."""

    name: str
    message: str
    code: str | None = None
    feedback: dict[str, str] = Field(default_factory=dict)
    cta: ErrorCta | None = None
