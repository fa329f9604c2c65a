"""The fixed cast of the simulated workspace: responders, models, tools and errors.

Invariants:
- The default responders are the same for every seed, so a demo configuration or a test
  can name them (`DEFAULT_RESPONDERS`); only executions depend on the seed.
- Every identifier is a UUID v4 string drawn from a `random.Random`, never from the OS.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

ExecutionKind = Literal["agent", "squad", "workflow"]
ExecutionStatus = Literal["running", "completed", "failed", "cancelled"]

KINDS: tuple[ExecutionKind, ...] = ("agent", "squad", "workflow")
STATUSES: tuple[ExecutionStatus, ...] = ("running", "completed", "failed", "cancelled")
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

AGENT_ORIGINS: tuple[str, ...] = ("api", "chat-message", "delegation", "agentic-execution-node")
WORKFLOW_ORIGINS: tuple[str, ...] = ("webhook-request", "agent-tool-request")


def uuid4(rng: random.Random) -> str:
    """A UUID v4 string from `rng` (version and variant bits set as RFC 9562 says)."""
    n = rng.getrandbits(128)
    n = (n & ~(0xF << 76)) | (0x4 << 76)
    n = (n & ~(0x3 << 62)) | (0x2 << 62)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class WorkflowNode:
    node_id: str
    node_type: str
    label: str


@dataclass(frozen=True)
class Responder:
    """Who answers an execution: an agent, a squad (led by an agent) or a workflow."""

    responder_id: str
    kind: ExecutionKind
    name: str
    agent_id: str | None = None
    squad_id: str | None = None
    workflow_id: str | None = None
    implementation_id: str | None = None
    trigger_id: str | None = None
    nodes: tuple[WorkflowNode, ...] = ()
    # A busy responder runs more executions; seed_history draws responders by weight.
    weight: float = 1.0


# (llm key, provider name); the provider id is null for models the platform hosts itself.
LLMS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "OpenAI"),
    ("gpt-4o-mini", "OpenAI"),
    ("claude-sonnet-4", "Anthropic"),
    ("gemini-2.5-flash", "Google"),
    ("llama-3.3-70b", "Zaia Hosted"),
)

# (toolType, label) of ordinary tool calls that start no child execution.
TOOLS: tuple[tuple[str, str], ...] = (
    ("knowledge-base", "Search knowledge base"),
    ("http-request", "Call CRM API"),
    ("web-search", "Search the web"),
    ("code", "Run Python snippet"),
    ("calendar", "Check calendar slots"),
)

# (message, code) of the errors a failing step reports.
ERRORS: tuple[tuple[str, str], ...] = (
    ("The LLM provider did not answer within 60 seconds.", "LLM_TIMEOUT"),
    ("Tool 'Call CRM API' returned HTTP 500 Internal Server Error.", "TOOL_HTTP_ERROR"),
    ("The workspace has no credits left for this execution.", "CREDITS_EXHAUSTED"),
    ("The LLM provider rate-limited the request (429).", "PROVIDER_RATE_LIMIT"),
    ("The model answered with invalid JSON for a structured output.", "INVALID_MODEL_OUTPUT"),
    ("Node 'Send confirmation email' failed: SMTP connection refused.", "NODE_FAILED"),
    ("A child execution failed.", "CHILD_EXECUTION_FAILED"),
)

PROMPTS: tuple[str, ...] = (
    "Where is my order #48213?",
    "Can you reschedule my appointment to Friday afternoon?",
    "Summarise the attached contract in five bullet points.",
    "Qual o prazo de entrega para Porto Alegre?",
    "I want to cancel my subscription.",
    "¿Tienen disponibilidad para el 12 de mayo?",
    "Draft a follow-up email for the leads from yesterday's webinar.",
)

ANSWERS: tuple[str, ...] = (
    "Your order left our warehouse today and should arrive within 2 business days.",
    "Done! Your appointment is now on Friday at 15:30.",
    "Here is the summary you asked for.",
    "O prazo de entrega para Porto Alegre é de 3 a 5 dias úteis.",
    "I have opened a cancellation request; you will receive a confirmation email.",
)


def _workflow(
    rng: random.Random, name: str, steps: tuple[tuple[str, str], ...], weight: float
) -> Responder:
    return Responder(
        responder_id=uuid4(rng),
        kind="workflow",
        name=name,
        workflow_id=uuid4(rng),
        implementation_id=uuid4(rng),
        trigger_id=uuid4(rng),
        nodes=tuple(WorkflowNode(uuid4(rng), node_type, label) for node_type, label in steps),
        weight=weight,
    )


def _default_responders() -> tuple[Responder, ...]:
    rng = random.Random("zaia-relay-sim-responders")
    agents = [
        ("Customer Support Agent", 5.0),
        ("Sales Qualifier", 3.0),
        ("Scheduling Assistant", 2.0),
        ("Contract Summariser", 1.0),
        ("Internal IT Helpdesk", 1.0),
    ]
    found: list[Responder] = [
        Responder(uuid4(rng), "agent", name, agent_id=uuid4(rng), weight=weight)
        for name, weight in agents
    ]
    for name, weight in (("Onboarding Squad", 1.5), ("Escalations Squad", 1.0)):
        found.append(
            Responder(
                uuid4(rng), "squad", name, agent_id=uuid4(rng), squad_id=uuid4(rng), weight=weight
            )
        )
    found.append(
        _workflow(
            rng,
            "New lead enrichment",
            (
                ("trigger", "Webhook trigger"),
                ("http-request", "Fetch CRM contact"),
                ("agent", "Qualify lead"),
                ("condition", "Is qualified?"),
                ("http-request", "Notify sales channel"),
            ),
            3.0,
        )
    )
    found.append(
        _workflow(
            rng,
            "Order status sync",
            (
                ("trigger", "Webhook trigger"),
                ("code", "Normalise payload"),
                ("http-request", "Query ERP order"),
                ("workflow", "Run shipping sub-flow"),
                ("email", "Send confirmation email"),
            ),
            2.0,
        )
    )
    found.append(
        _workflow(
            rng,
            "Nightly report",
            (
                ("trigger", "Agent tool trigger"),
                ("agent", "Write report"),
                ("email", "Email report"),
            ),
            1.0,
        )
    )
    return tuple(found)


DEFAULT_RESPONDERS: tuple[Responder, ...] = _default_responders()


def make_responder(rng: random.Random, *, responder_id: str, kind: ExecutionKind) -> Responder:
    """A responder for an id the caller chose, with fresh ids for what it answers with."""
    if kind == "workflow":
        base = _workflow(rng, "Custom workflow", (("trigger", "Webhook trigger"),), 1.0)
        return Responder(
            responder_id,
            "workflow",
            base.name,
            workflow_id=base.workflow_id,
            implementation_id=base.implementation_id,
            trigger_id=base.trigger_id,
            nodes=(*base.nodes, WorkflowNode(uuid4(rng), "agent", "Run agent")),
        )
    squad_id = uuid4(rng) if kind == "squad" else None
    name = "Custom squad" if kind == "squad" else "Custom agent"
    return Responder(responder_id, kind, name, agent_id=uuid4(rng), squad_id=squad_id)


def resolve_responder(
    rng: random.Random,
    known: dict[str, Responder],
    responder_id: str | None,
    kind: ExecutionKind | None,
) -> Responder:
    """The responder for a new execution: a default one of `kind` (agent if unset) drawn
    at random, or the one named, registered in `known` on first use."""
    if responder_id is None:
        wanted = kind or "agent"
        candidates = [r for r in DEFAULT_RESPONDERS if r.kind == wanted]
        return candidates[rng.randrange(len(candidates))]
    found = known.get(responder_id)
    if found is None:
        found = make_responder(rng, responder_id=responder_id, kind=kind or "agent")
        known[responder_id] = found
    elif kind is not None and found.kind != kind:
        raise ValueError(f"responder {responder_id} is a {found.kind}, not a {kind}")
    return found


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")


def check_credits(amount: float) -> None:
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"credits must be a finite number >= 0, not {amount!r}")
