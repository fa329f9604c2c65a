"""Generates a realistic execution history in bulk, and the origins of executions.

Invariants:
- `generate` is a pure function of the plan, the random generator and `now_ms`; it only
  builds records, the workspace indexes them (once, in bulk, so 100k records take about a
  second instead of 100k sorted inserts).
- Children are created a little after their parent and never after `now_ms`; a terminal
  parent ends no earlier than its children; a failed parent whose child failed points its
  failing step at that child.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate

from relay.sim.catalog import DEFAULT_RESPONDERS, ExecutionKind, Responder, uuid4
from relay.sim.payloads import failure_of
from relay.sim.records import ChildLink, ExecRecord

_AGENTS = tuple(r for r in DEFAULT_RESPONDERS if r.kind == "agent")
_WORKFLOWS = tuple(r for r in DEFAULT_RESPONDERS if r.kind == "workflow")
_CUM_WEIGHTS = tuple(accumulate(r.weight for r in DEFAULT_RESPONDERS))


@dataclass(frozen=True)
class HistoryPlan:
    count: int
    running: int = 0
    failed_ratio: float = 0.06
    cancelled_ratio: float = 0.03
    child_ratio: float = 0.08
    purged: int = 0
    span_ms: int = 3 * 86_400_000

    def __post_init__(self) -> None:
        if self.count < 0 or self.running < 0 or self.purged < 0 or self.span_ms <= 0:
            raise ValueError("count, running and purged must be >= 0, and the span positive")
        if not 0 <= self.failed_ratio + self.cancelled_ratio <= 1:
            raise ValueError("failed_ratio + cancelled_ratio must be within 0..1")
        if not 0 <= self.child_ratio <= 1:
            raise ValueError("child_ratio must be within 0..1")


def default_origin(rng: random.Random, kind: ExecutionKind, parent: ExecRecord | None) -> str:
    """How an execution of `kind` usually starts, given its parent (if any)."""
    if kind == "workflow":
        if parent is not None or rng.random() < 0.1:
            return "agent-tool-request"
        return "webhook-request"
    if parent is not None:
        return "agentic-execution-node" if parent.kind == "workflow" else "delegation"
    chat_share = 0.8 if kind == "squad" else 0.65
    return "chat-message" if rng.random() < chat_share else "api"


def origin_ref(
    rng: random.Random,
    origin_type: str,
    responder: Responder,
    parent: ExecRecord | None,
    *,
    api_key_ids: tuple[str, ...],
) -> str:
    """The id an origin carries: the API key, chat message, delegating agent, workflow
    node or trigger that started the execution."""
    if origin_type == "api":
        return api_key_ids[rng.randrange(len(api_key_ids))]
    if origin_type == "delegation" and parent is not None and parent.responder.agent_id:
        return parent.responder.agent_id
    if origin_type == "agentic-execution-node" and parent is not None:
        nodes = [n for n in parent.responder.nodes if n.node_type == "agent"]
        if nodes:
            return nodes[0].node_id
    if origin_type in ("webhook-request", "agent-tool-request") and responder.trigger_id:
        return responder.trigger_id
    return uuid4(rng)


def _child_responder(rng: random.Random, parent: ExecRecord) -> Responder:
    if parent.kind != "workflow" and rng.random() < 0.25:
        return _WORKFLOWS[rng.randrange(len(_WORKFLOWS))]
    return _AGENTS[rng.randrange(len(_AGENTS))]


def _root_status(rng: random.Random, plan: HistoryPlan) -> str:
    draw = rng.random()
    if draw < plan.failed_ratio:
        return "failed"
    if draw < plan.failed_ratio + plan.cancelled_ratio:
        return "cancelled"
    return "completed"


def _child_status(rng: random.Random, parent_status: str) -> str:
    draw = rng.random()
    if parent_status == "running":
        return "running" if draw < 0.6 else "completed"
    if parent_status in ("failed", "cancelled"):
        return parent_status if draw < 0.5 else "completed"
    return "completed"


def _credits(rng: random.Random, kind: ExecutionKind) -> float:
    amount = rng.expovariate(1 / 3.0 if kind == "workflow" else 1 / 8.0)
    if rng.random() < 0.01:
        # A few executions are expensive, for credit rules to catch.
        amount *= 80
    return round(amount, 2)


def _layout(plan: HistoryPlan, rng: random.Random, now_ms: int) -> tuple[list[int], list[int]]:
    """Creation times and parent slot (-1 for roots) of every execution, oldest first."""
    parents: list[int] = []
    created: list[int] = []
    step_ms = plan.span_ms / max(plan.count, 1)
    t = float(now_ms - plan.span_ms)
    while len(parents) < plan.count:
        t += rng.random() * 2 * step_ms
        parents.append(-1)
        created.append(min(int(t), now_ms))
        if rng.random() >= plan.child_ratio:
            continue
        parent_slot = len(parents) - 1
        while len(parents) < plan.count:
            parents.append(parent_slot)
            created.append(min(created[parent_slot] + rng.randint(200, 5000), now_ms))
            if rng.random() >= 0.3:
                break
            parent_slot = len(parents) - 1
    return parents, created


def generate(
    plan: HistoryPlan,
    *,
    rng: random.Random,
    now_ms: int,
    first_tick: int,
    api_key_ids: tuple[str, ...],
) -> list[ExecRecord]:
    parents, created = _layout(plan, rng, now_ms)
    roots = [slot for slot, parent in enumerate(parents) if parent < 0]
    pool = roots[-2 * plan.running :] if plan.running else []
    running_slots = set(rng.sample(pool, min(plan.running, len(pool))))
    records: list[ExecRecord] = []
    for slot, parent_slot in enumerate(parents):
        parent = records[parent_slot] if parent_slot >= 0 else None
        if parent is None:
            responder = DEFAULT_RESPONDERS[bisect(_CUM_WEIGHTS, rng.random() * _CUM_WEIGHTS[-1])]
            status = "running" if slot in running_slots else _root_status(rng, plan)
        else:
            responder = _child_responder(rng, parent)
            status = _child_status(rng, parent.status)
        kind = responder.kind
        created_ms = created[slot]
        if status == "running":
            ended_ms = None
            updated_ms = max(created_ms, now_ms - rng.randint(0, 20_000))
        else:
            duration_ms = int(rng.expovariate(1 / 30_000)) + 800
            ended_ms = updated_ms = min(created_ms + duration_ms, now_ms)
        origin_type = default_origin(rng, kind, parent)
        rec = ExecRecord(
            id=uuid4(rng),
            seq=first_tick + slot,
            kind=kind,
            status=status,
            responder=responder,
            parent_id=parent.id if parent is not None else None,
            credits=_credits(rng, kind),
            created_ms=created_ms,
            updated_ms=updated_ms,
            ended_ms=ended_ms,
            is_agentic=rng.random() < (0.2 if kind == "workflow" else 0.4),
            origin_type=origin_type,
            origin_ref=origin_ref(rng, origin_type, responder, parent, api_key_ids=api_key_ids),
            seed=rng.getrandbits(32),
            is_purged=slot < plan.purged,
            tick=first_tick + slot,
        )
        records.append(rec)
        if parent is not None:
            _link(parent, rec, records=records, parents=parents, slot=slot)
    return records


def _link(
    parent: ExecRecord,
    child: ExecRecord,
    *,
    records: list[ExecRecord],
    parents: list[int],
    slot: int,
) -> None:
    frozen = None if parent.status == "running" else child.status
    parent.children = [*(parent.children or ()), ChildLink(child.id, child.created_ms, frozen)]
    if parent.status == "failed" and child.status == "failed" and parent.failed_child_id is None:
        parent.failed_child_id = child.id
        message, _ = failure_of(child)
        parent.error = (f"Child execution failed: {message}", "CHILD_EXECUTION_FAILED")
    # Ancestors that already ended cannot end before this descendant.
    ended_ms = child.ended_ms
    ancestor_slot = parents[slot]
    while ended_ms is not None and ancestor_slot >= 0:
        ancestor = records[ancestor_slot]
        if ancestor.ended_ms is None or ancestor.ended_ms >= ended_ms:
            break
        ancestor.ended_ms = ancestor.updated_ms = ended_ms
        ancestor_slot = parents[ancestor_slot]
