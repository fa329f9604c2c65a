"""The in-memory state of a simulated Zaia workspace (no I/O, no asyncio).

Invariants:
- Deterministic: given the seed, the clock and the same calls, every id, payload and
  order is the same. Randomness only comes from `random.Random(seed)`.
- `updatedAt` strictly increases (by at least 1 ms) on every change to what the API
  returns for an execution, even when the injected clock stands still; `endedAt` is set
  exactly when the status is terminal.
- A change to a child that shows in its running parent's events (a new child, a child's
  status) also changes the parent. When a parent ends, its child steps are frozen.
- Deleted executions vanish from every answer; purged ones stay, without data.
- Listing is newest first by `createdAt` (or `updatedAt` with `order="updated"`); the
  index is kept sorted on every change, so a page costs O(page size).

The reads, and the errors of a lookup, are in `relay.sim.queries`; the errors are
importable from here too.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from relay.sim import history
from relay.sim.catalog import (
    AGENT_ORIGINS,
    DEFAULT_RESPONDERS,
    TERMINAL,
    WORKFLOW_ORIGINS,
    ExecutionKind,
    Responder,
    check_credits,
    check_status,
    resolve_responder,
    uuid4,
)
from relay.sim.clock import to_ms, utcnow
from relay.sim.faults import ENDPOINTS, Endpoint, Fault, FaultQueue
from relay.sim.payloads import JsonRenderer, failure_of
from relay.sim.queries import FollowUpMessageError, UnknownExecutionError, WorkspaceQueries
from relay.sim.records import ChildLink, ExecRecord, IndexEntry, OrderIndex

__all__ = ["FollowUpMessageError", "Order", "SimWorkspace", "UnknownExecutionError"]

Order = Literal["created", "updated"]


class SimWorkspace(WorkspaceQueries):
    """A Zaia workspace whose executions tests and benches create and move at will.

    The mutations are here; the reads are inherited from `WorkspaceQueries`."""

    def __init__(
        self,
        *,
        api_key: str = "sim-key",
        workspace_id: str | None = None,
        seed: int = 0,
        now: Callable[[], datetime] = utcnow,
        order: Order = "created",
    ) -> None:
        if order not in ("created", "updated"):
            raise ValueError(f"order must be 'created' or 'updated', not {order!r}")
        self.api_key = api_key
        self.order: Order = order
        self.now = now
        self._rng = random.Random(seed)
        self._workspace_id = workspace_id or uuid4(self._rng)
        self.api_key_ids = (uuid4(self._rng), uuid4(self._rng))
        self._responders: dict[str, Responder] = {r.responder_id: r for r in DEFAULT_RESPONDERS}
        self._records: dict[str, ExecRecord] = {}
        self._index = OrderIndex()
        self._chat_messages: dict[str, str] = {}
        self._follow_ups: set[str] = set()
        self._faults = FaultQueue()
        self._status_counts: Counter[str] = Counter()
        # One counter orders creations and changes, so index ties break stably.
        self._tick = 0
        self._json = JsonRenderer(workspace_id=self._workspace_id, lookup=self._records.get)
        self.requests: dict[str, int] = dict.fromkeys(ENDPOINTS, 0)

    # --- mutations ----------------------------------------------------------------------

    def create_execution(
        self,
        *,
        kind: ExecutionKind | None = None,
        status: str = "running",
        responder_id: str | None = None,
        parent_id: str | None = None,
        credits_used: float = 0.0,
        created_at: datetime | None = None,
        ended_at: datetime | None = None,
        is_agentic: bool = False,
        origin_type: str | None = None,
        error: str | None = None,
    ) -> str:
        """Add one execution and return its id. `kind` defaults to the responder's kind,
        else "agent"; a terminal execution ends now unless `ended_at` says otherwise."""
        check_status(status)
        check_credits(credits_used)
        parent = self._get(parent_id) if parent_id is not None else None
        responder = resolve_responder(self._rng, self._responders, responder_id, kind)
        origin_type, origin_ref = self._origin(responder, origin_type, parent)
        now_ms = self._now_ms()
        created_ms = to_ms(created_at) if created_at is not None else now_ms
        ended_ms = None
        if status in TERMINAL:
            ended_ms = to_ms(ended_at) if ended_at is not None else max(now_ms, created_ms)
        self._tick += 1
        rec = ExecRecord(
            id=uuid4(self._rng),
            seq=self._tick,
            kind=responder.kind,
            status=status,
            responder=responder,
            parent_id=parent_id,
            credits=float(credits_used),
            created_ms=created_ms,
            updated_ms=ended_ms if ended_ms is not None else max(created_ms, now_ms),
            ended_ms=ended_ms,
            is_agentic=is_agentic,
            origin_type=origin_type,
            origin_ref=origin_ref,
            seed=self._rng.getrandbits(32),
            tick=self._tick,
            error=(error, "EXECUTION_FAILED") if error and status == "failed" else None,
        )
        self._insert(rec)
        self._index.add(self._entry(rec))
        if parent is not None:
            frozen = None if parent.status == "running" else rec.status
            parent.children = [*(parent.children or ()), ChildLink(rec.id, created_ms, frozen)]
            self._touch(parent)
        return rec.id

    def spawn_child(
        self,
        parent_id: str,
        *,
        kind: ExecutionKind | None = None,
        status: str = "running",
        responder_id: str | None = None,
        credits_used: float = 0.0,
        is_agentic: bool = False,
        origin_type: str | None = None,
    ) -> str:
        """A child of `parent_id`, linked by `parentId` and by a step of the parent whose
        `childExecutionId` names it."""
        return self.create_execution(
            kind=kind,
            status=status,
            responder_id=responder_id,
            parent_id=parent_id,
            credits_used=credits_used,
            is_agentic=is_agentic,
            origin_type=origin_type,
        )

    def set_status(
        self,
        execution_id: str,
        status: str,
        *,
        error: str | None = None,
        error_code: str | None = None,
    ) -> None:
        """Move an execution to `status`. Failing adds a failed step whose output holds
        the error; if a child already failed, that child's step is the failing one."""
        check_status(status)
        rec = self._get(execution_id)
        if status == rec.status and error is None:
            return
        self._status_counts[rec.status] -= 1
        self._status_counts[status] += 1
        rec.status = status
        rec.error, rec.failed_child_id = None, None
        if status == "failed":
            failed_child = self._failed_child(rec)
            if error is not None:
                rec.error = (error, error_code or "EXECUTION_FAILED")
            if failed_child is not None:
                rec.failed_child_id = failed_child.id
                if error is None:
                    message, _ = failure_of(failed_child)
                    rec.error = (f"Child execution failed: {message}", "CHILD_EXECUTION_FAILED")
        self._touch(rec)
        rec.ended_ms = rec.updated_ms if status in TERMINAL else None
        for link in rec.children or ():
            child = self._records.get(link.child_id)
            if status == "running" and child is not None:
                link.frozen_status = None
            elif status != "running" and link.frozen_status is None:
                link.frozen_status = child.status if child is not None else "completed"
        self._ripple(rec)

    def add_credits(self, execution_id: str, amount: float) -> None:
        check_credits(amount)
        rec = self._get(execution_id)
        rec.credits += float(amount)
        self._touch(rec)

    def purge(self, execution_id: str) -> None:
        """Drop inputs and outputs, as retention does; the execution stays listed."""
        rec = self._get(execution_id)
        if not rec.is_purged:
            rec.is_purged = True
            self._touch(rec)

    def delete(self, execution_id: str) -> None:
        """Forget an execution: 404 by id, gone from lists; its parent's step stays."""
        rec = self._get(execution_id)
        self._index.remove(self._entry(rec))
        del self._records[rec.id]
        self._json.forget(rec.id)
        self._status_counts[rec.status] -= 1
        if rec.origin_type == "chat-message":
            self._chat_messages.pop(rec.origin_ref, None)
        parent = self._records.get(rec.parent_id) if rec.parent_id else None
        for link in parent.children or () if parent is not None else ():
            if link.child_id == rec.id and link.frozen_status is None:
                link.frozen_status = rec.status

    def add_follow_up_message(self, chat_message_id: str | None = None) -> str:
        """A chat message that answered a follow-up and triggered nothing (nestings: 412)."""
        message_id = chat_message_id or uuid4(self._rng)
        self._follow_ups.add(message_id)
        return message_id

    def inject_fault(self, fault: Fault) -> None:
        self._faults.add(fault)

    def take_fault(self, endpoint: Endpoint) -> Fault | None:
        return self._faults.take(endpoint)

    def clear_faults(self) -> None:
        self._faults.clear()

    def seed_history(
        self,
        count: int,
        *,
        running: int = 0,
        failed_ratio: float = 0.06,
        cancelled_ratio: float = 0.03,
        child_ratio: float = 0.08,
        purged: int = 0,
        span_s: float = 3 * 86400.0,
    ) -> None:
        """Add `count` executions (children included) created over the last `span_s`
        seconds; `running` of the newest roots still run, the `purged` oldest are purged."""
        plan = history.HistoryPlan(
            count=count,
            running=running,
            failed_ratio=failed_ratio,
            cancelled_ratio=cancelled_ratio,
            child_ratio=child_ratio,
            purged=purged,
            span_ms=int(span_s * 1000),
        )
        records = history.generate(
            plan,
            rng=self._rng,
            now_ms=self._now_ms(),
            first_tick=self._tick + 1,
            api_key_ids=self.api_key_ids,
        )
        self._tick += len(records)
        for rec in records:
            self._insert(rec)
        self._index.bulk_add(self._entry(rec) for rec in records)

    # --- internals ----------------------------------------------------------------------

    def _now_ms(self) -> int:
        return to_ms(self.now())

    def _entry(self, rec: ExecRecord) -> IndexEntry:
        if self.order == "created":
            return (rec.created_ms, rec.seq, rec)
        return (rec.updated_ms, rec.tick, rec)

    def _insert(self, rec: ExecRecord) -> None:
        self._records[rec.id] = rec
        self._status_counts[rec.status] += 1
        if rec.origin_type == "chat-message":
            self._chat_messages[rec.origin_ref] = rec.id

    def _touch(self, rec: ExecRecord) -> None:
        """Record a change: bump `updatedAt` and the version, and move it in the index."""
        old = self._entry(rec)
        self._tick += 1
        rec.updated_ms = max(self._now_ms(), rec.updated_ms + 1)
        rec.tick = self._tick
        rec.version += 1
        if self.order == "updated":
            self._index.remove(old)
            self._index.add(self._entry(rec))

    def _ripple(self, rec: ExecRecord) -> None:
        # A running parent shows its children's live status in its steps.
        parent = self._records.get(rec.parent_id) if rec.parent_id else None
        if parent is not None and parent.status == "running":
            self._touch(parent)

    def _failed_child(self, rec: ExecRecord) -> ExecRecord | None:
        for link in reversed(rec.children or ()):
            child = self._records.get(link.child_id)
            if child is not None and child.status == "failed":
                return child
        return None

    def _origin(
        self, responder: Responder, origin_type: str | None, parent: ExecRecord | None
    ) -> tuple[str, str]:
        allowed = WORKFLOW_ORIGINS if responder.kind == "workflow" else AGENT_ORIGINS
        if origin_type is None:
            origin_type = history.default_origin(self._rng, responder.kind, parent)
        if origin_type not in allowed:
            raise ValueError(f"a {responder.kind} execution cannot have origin {origin_type!r}")
        return origin_type, history.origin_ref(
            self._rng, origin_type, responder, parent, api_key_ids=self.api_key_ids
        )
