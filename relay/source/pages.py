"""Pages of executions as the client returns them, and the per-item validation behind them.

Invariants:
- Pure: no I/O. Each item is validated on its own, so one bad item is reported in
  `ExecutionPage.problems` and never loses the rest of the page.
- `raw_count` counts every item the API sent, valid or not: it alone says whether the
  page was full, hence whether the pager should read the next one.
- Problem messages name fields, never values: inputs and outputs of executions can hold
  personal data and secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from relay.domain.models import Execution

_MAX_PROBLEMS_PER_ITEM = 3


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """An item of a page that was skipped because it does not match the documented schema."""

    index: int
    execution_id: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """One page of `GET /api/v1/executions`: the valid items and what was wrong with the rest."""

    page_number: int
    page_size: int
    items: tuple[Execution, ...]
    problems: tuple[ItemProblem, ...]
    raw_count: int  # items the API sent, valid or not

    @property
    def is_full(self) -> bool:
        """A full page means there may be more after it."""
        return self.raw_count >= self.page_size


def describe_validation_error(error: ValidationError) -> str:
    """A short, value-free summary: inputs can hold personal data and must not be logged."""
    details = error.errors(include_url=False, include_input=False, include_context=False)
    parts = [
        f"{'.'.join(str(p) for p in d['loc']) or '(item)'}: {d['msg']}"
        for d in details[:_MAX_PROBLEMS_PER_ITEM]
    ]
    if len(details) > _MAX_PROBLEMS_PER_ITEM:
        parts.append(f"and {len(details) - _MAX_PROBLEMS_PER_ITEM} more")
    return "; ".join(parts)


def parse_items(raw: Sequence[Any]) -> tuple[tuple[Execution, ...], tuple[ItemProblem, ...]]:
    """Validate each item on its own; a bad one is reported, never fatal."""
    items: list[Execution] = []
    problems: list[ItemProblem] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(ItemProblem(index, None, f"item is a JSON {json_type(item)}"))
            continue
        try:
            items.append(Execution.model_validate(item))
        except ValidationError as exc:
            item_id = item.get("id")
            readable_id = item_id if isinstance(item_id, str) else None
            problems.append(ItemProblem(index, readable_id, describe_validation_error(exc)))
    return tuple(items), tuple(problems)


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
