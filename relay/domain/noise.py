"""Parent/child noise: one alert for a failure cascade seen in one cycle.

When an execution fails, the executions that ran it usually fail too, and one cycle
sees them all. Alerting on each would page several times for one fault, so within one
batch of transitions and for one rule, a failing execution whose parent also fails
(under the same rule, in the same batch) is *folded* into its topmost failing ancestor:
that ancestor's alert names the chain down to the deepest failing descendant, and the
folded executions get no alert of their own.

Invariants:
- Only transitions into a failure status (failed, cancelled) fold (the caller also
  keeps out rules about credits or durations, which are each execution's own), and
  only along `parentId` links between executions that all match the rule in this
  batch: a gap (an ancestor not in the batch, or that did not fail) ends the cascade.
- The alert of a top lists the ids it absorbed, so no failure goes unnamed.
- Every matched execution is either a top (it alerts) or folded into exactly one top.
- The chain of a top follows, at each level, the child its failing step points to
  (`childExecutionId`) when that child is folded, else the folded child with the
  smallest id, so the chain does not depend on the order of the batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relay.domain.cause import child_of, failed_event
from relay.domain.models import Execution

FAILURE_STATUSES = frozenset({"failed", "cancelled"})

__all__ = ["FAILURE_STATUSES", "Cascade", "fold_cascades"]


@dataclass(frozen=True, slots=True)
class Cascade:
    """A top execution and what was folded into it."""

    top: str
    chain: tuple[str, ...]  # top -> ... -> deepest folded descendant (just `top` if none)
    folded: frozenset[str]  # every descendant folded into `top`


def fold_cascades(failing: Mapping[str, Execution]) -> dict[str, Cascade]:
    """Top id -> its cascade, for executions that failed under one rule in one batch.

    `failing` maps execution id -> execution, for the matched transitions into a
    failure status. Executions not in the result were folded into a top.
    """
    top_of: dict[str, str] = {}
    for execution_id in failing:
        top_of[execution_id] = _top(execution_id, failing)
    folded: dict[str, set[str]] = {}
    for execution_id, top in top_of.items():
        if top != execution_id:
            folded.setdefault(top, set()).add(execution_id)
    cascades: dict[str, Cascade] = {}
    for execution_id, top in top_of.items():
        if top != execution_id:
            continue
        descendants = folded.get(top, set())
        chain = _chain(top, descendants, failing)
        cascades[top] = Cascade(top=top, chain=chain, folded=frozenset(descendants))
    return cascades


def _top(execution_id: str, failing: Mapping[str, Execution]) -> str:
    top = execution_id
    seen = {execution_id}
    parent = failing[execution_id].parent_id
    while parent is not None and parent in failing and parent not in seen:
        seen.add(parent)
        top = parent
        parent = failing[parent].parent_id
    return top


def _chain(top: str, descendants: set[str], failing: Mapping[str, Execution]) -> tuple[str, ...]:
    chain = [top]
    node = top
    while True:
        kids = sorted(d for d in descendants if failing[d].parent_id == node and d not in chain)
        if not kids:
            return tuple(chain)
        pointed = child_of(failed_event(failing[node]))
        node = pointed if pointed in kids else kids[0]
        chain.append(node)
