"""The read side of a simulated workspace: what tests, benches and the HTTP app ask of
`relay.sim.workspace.SimWorkspace` (which inherits it), and the errors of a lookup.

Invariants:
- Reads never change the workspace (the HTTP app counts requests itself).
- Every answer is a copy: dictionaries are built fresh, JSON is immutable bytes.
- Deleted executions are in no answer: every read goes through the records and the
  index, which `delete` updates together. A page costs O(page size); the filtered id
  lists (`execution_ids`) are O(n), for tests.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from relay.sim.catalog import STATUSES, ExecutionKind, Responder
from relay.sim.faults import FaultQueue
from relay.sim.payloads import JsonRenderer, render_execution
from relay.sim.records import ExecRecord, OrderIndex

__all__ = ["FollowUpMessageError", "UnknownExecutionError", "WorkspaceQueries"]


class UnknownExecutionError(LookupError):
    """No such execution (never created, or deleted): the API answers 404."""


class FollowUpMessageError(LookupError):
    """The chat message is a follow-up without executions: the API answers 412."""


class WorkspaceQueries:
    """Lookups over a workspace's state; `SimWorkspace.__init__` sets that state up."""

    requests: dict[str, int]
    _workspace_id: str
    _responders: dict[str, Responder]
    _records: dict[str, ExecRecord]
    _index: OrderIndex
    _chat_messages: dict[str, str]
    _follow_ups: set[str]
    _faults: FaultQueue
    _status_counts: Counter[str]
    _json: JsonRenderer

    # --- catalogue ----------------------------------------------------------------------

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    @property
    def responders(self) -> tuple[Responder, ...]:
        return tuple(self._responders.values())

    def responder_ids(self, kind: ExecutionKind | None = None) -> list[str]:
        return [r.responder_id for r in self._responders.values() if kind in (None, r.kind)]

    # --- executions ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._records

    def raw(self, execution_id: str) -> dict[str, Any]:
        """The JSON the API would return for this execution (a fresh copy)."""
        return self._render(self._get(execution_id))

    def raw_tree(self, execution_id: str) -> dict[str, Any]:
        """The JSON `/nestings?executionId=` would return (a fresh copy)."""
        result: dict[str, Any] = json.loads(self.tree_json(execution_id=execution_id))
        return result

    def status_of(self, execution_id: str) -> str:
        return self._get(execution_id).status

    def children_of(self, execution_id: str) -> list[str]:
        links = self._get(execution_id).children or ()
        return [link.child_id for link in links if link.child_id in self._records]

    def execution_ids(
        self,
        *,
        status: str | None = None,
        kind: ExecutionKind | None = None,
        roots_only: bool = False,
        with_children: bool = False,
    ) -> list[str]:
        """Ids in list order (newest first), filtered; for tests, O(n)."""
        return [
            rec.id
            for rec in self._index.newest_first()
            if status in (None, rec.status)
            and kind in (None, rec.kind)
            and not (roots_only and rec.parent_id is not None)
            and not (with_children and not rec.children)
        ]

    def counts_by_status(self) -> dict[str, int]:
        return {status: self._status_counts[status] for status in STATUSES}

    def stats(self) -> dict[str, Any]:
        return {
            "executions": len(self._records),
            "statuses": self.counts_by_status(),
            "requests": dict(self.requests),
            "faults_pending": len(self._faults),
        }

    # --- API answers --------------------------------------------------------------------

    def page_json(
        self, *, page_number: int, page_size: int, responder_ids: Sequence[str] = ()
    ) -> bytes:
        """One page of the list endpoint, as the JSON array it answers."""
        records = self._index.page(
            offset=(page_number - 1) * page_size, limit=page_size, responder_ids=responder_ids
        )
        return b"[" + b",".join(self._json.item(rec) for rec in records) + b"]"

    def execution_json(self, execution_id: str) -> bytes:
        return self._json.item(self._get(execution_id))

    def tree_json(
        self, *, execution_id: str | None = None, chat_message_id: str | None = None
    ) -> bytes:
        """`/nestings`: the execution with its `children`, recursively."""
        if execution_id is None:
            if chat_message_id in self._follow_ups:
                raise FollowUpMessageError(chat_message_id)
            execution_id = self._chat_messages.get(chat_message_id or "")
            if execution_id is None:
                raise UnknownExecutionError(chat_message_id)
        return self._json.tree(self._get(execution_id))

    # --- internals ----------------------------------------------------------------------

    def _get(self, execution_id: str | None) -> ExecRecord:
        rec = self._records.get(execution_id or "")
        if rec is None:
            raise UnknownExecutionError(execution_id)
        return rec

    def _render(self, rec: ExecRecord) -> dict[str, Any]:
        return render_execution(rec, workspace_id=self.workspace_id, lookup=self._records.get)
