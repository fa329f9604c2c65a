"""Pages of executions as the client returns them, and the per-item validation behind them.

Invariants:
- Pure: no I/O. Each item is validated on its own, so one bad item is reported in
  `ExecutionPage.problems` and never loses the rest of the page.
- Validation is two-step because most of a steady-state page is history the relay
  already knows: `PageEntry` decodes only the few fields that say whether an item changed
  (id, status, credits, updatedAt, isPurged) from the item's raw JSON, skipping the rest
  unread; the full model is validated by `PageEntry.parse()` only for items that did
  change (decoding whole pages into Python objects was most of a poll's CPU).
  `ExecutionPage.items` and `.problems` validate everything, for callers that want the
  whole page.
- `raw_count` counts every item the API sent, valid or not: it alone says whether the
  page was full, hence whether the pager should read the next one.
- Problem messages name fields, never values: inputs and outputs of executions can hold
  personal data and secrets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import msgspec
import orjson
from pydantic import ValidationError

from relay.domain.models import Execution
from relay.vocab import ExecutionStatus

_MAX_PROBLEMS_PER_ITEM = 3


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """An item of a page that was skipped because it does not match the documented schema."""

    index: int
    execution_id: str | None
    message: str


class _ChangeFields(msgspec.Struct):
    """The fields of an item that say whether it changed; msgspec skips the others."""

    id: str
    status: Literal["running", "completed", "failed", "cancelled"]
    creditsUsed: float
    isPurged: bool
    updatedAt: str


_CHANGE_FIELDS = msgspec.json.Decoder(_ChangeFields)


class PageEntry(msgspec.Struct, frozen=True):
    """One item of a page whose change-detection fields are valid; the rest is unchecked
    JSON (`raw`). A struct, not a dataclass: a page builds a hundred of these per read."""

    index: int
    id: str
    status: ExecutionStatus
    credits_used: float
    updated_at: datetime
    is_purged: bool
    # A view into the page's body, not a copy: most entries are never parsed.
    raw: msgspec.Raw

    def __repr__(self) -> str:  # never the raw JSON: it can hold personal data
        return f"PageEntry(index={self.index}, id={self.id!r}, status={self.status!r})"

    def parse(self) -> Execution | ItemProblem:
        """The fully validated execution, or what is wrong with it."""
        try:
            # orjson, not pydantic's JSON parser: that one refuses data nested deeper
            # than about 200 levels, which the API may send and reads by id accept.
            return Execution.model_validate(orjson.loads(bytes(self.raw)))
        except ValidationError as exc:
            return ItemProblem(self.index, self.id, describe_validation_error(exc))


@dataclass(frozen=True)
class ExecutionPage:
    """One page of `GET /api/v1/executions`: its entries and what was wrong with the rest.

    `problems` covers items whose change-detection fields are invalid; `items` and
    `all_problems` validate every entry fully (cached).
    """

    page_number: int
    page_size: int
    entries: tuple[PageEntry, ...]
    header_problems: tuple[ItemProblem, ...]
    raw_count: int  # items the API sent, valid or not

    @property
    def is_full(self) -> bool:
        """A full page means there may be more after it."""
        return self.raw_count >= self.page_size

    @property
    def ids(self) -> list[str]:
        return [entry.id for entry in self.entries]

    @cached_property
    def _parsed(self) -> tuple[tuple[Execution, ...], tuple[ItemProblem, ...]]:
        items: list[Execution] = []
        problems = list(self.header_problems)
        for entry in self.entries:
            parsed = entry.parse()
            if isinstance(parsed, ItemProblem):
                problems.append(parsed)
            else:
                items.append(parsed)
        problems.sort(key=lambda p: p.index)
        return tuple(items), tuple(problems)

    @property
    def items(self) -> tuple[Execution, ...]:
        return self._parsed[0]

    @property
    def problems(self) -> tuple[ItemProblem, ...]:
        return self._parsed[1]


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


_PAGE_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])


def decode_page(content: bytes) -> Any:
    """A page as the raw JSON of each item, each decoded later only as far as needed;
    JSON that is not an array is decoded whole, for the error to say what it is. Raises
    ValueError when the content is not JSON."""
    try:
        return _PAGE_ITEMS.decode(content)
    except msgspec.ValidationError:
        return orjson.loads(content)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def parse_entries(
    raw: Sequence[bytes | msgspec.Raw],
) -> tuple[tuple[PageEntry, ...], tuple[ItemProblem, ...]]:
    """Check each item's change-detection fields (each item given as its raw JSON); a bad
    one is reported, never fatal."""
    entries: list[PageEntry] = []
    problems: list[ItemProblem] = []
    for index, item in enumerate(raw):
        entry_or_problem = _entry(index, item)
        if isinstance(entry_or_problem, PageEntry):
            entries.append(entry_or_problem)
        else:
            problems.append(entry_or_problem)
    return tuple(entries), tuple(problems)


def _entry(index: int, item: bytes | msgspec.Raw) -> PageEntry | ItemProblem:
    raw = item if isinstance(item, msgspec.Raw) else msgspec.Raw(item)
    try:
        fields = _CHANGE_FIELDS.decode(raw)
    except (msgspec.ValidationError, RecursionError):
        return _bad_entry(index, bytes(raw))
    updated_at = _timestamp(fields.updatedAt)
    if fields.creditsUsed < 0 or updated_at is None:
        return _bad_entry(index, bytes(raw))
    return PageEntry(
        index=index,
        id=fields.id,
        status=fields.status,
        credits_used=fields.creditsUsed,
        updated_at=updated_at,
        is_purged=fields.isPurged,
        raw=raw,
    )


def _bad_entry(index: int, raw: bytes) -> ItemProblem:
    """What is wrong with an item whose change-detection fields are not all valid."""
    try:
        item = orjson.loads(raw)
    except (ValueError, RecursionError):
        # What the page splitter took for one value, the full parser refuses (a number
        # out of range, invalid UTF-8, very deep nesting): this item alone is lost.
        return ItemProblem(index, None, "item is not valid JSON")
    if not isinstance(item, dict):
        return ItemProblem(index, None, f"item is a JSON {json_type(item)}")
    item_id = item.get("id")
    # The rare bad item: full validation says precisely what is wrong with it.
    readable_id = item_id if isinstance(item_id, str) else None
    try:
        Execution.model_validate(item)
    except ValidationError as exc:
        return ItemProblem(index, readable_id, describe_validation_error(exc))
    return ItemProblem(
        index, readable_id, "id, status, creditsUsed, isPurged or updatedAt is invalid"
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


class PageMemo:
    """The last body of each recently read page and the page it parsed to.

    A quiet workspace answers most reads with the very bytes it sent last time; those
    are recognised by comparing bytes (a memcmp) instead of decoding a hundred items
    again. Bounded to the `capacity` pages read most recently."""

    def __init__(self, capacity: int = 32) -> None:
        self._capacity = capacity
        self._pages: OrderedDict[tuple[int, int], tuple[bytes, ExecutionPage]] = OrderedDict()

    def recall(self, page_number: int, page_size: int, content: bytes) -> ExecutionPage | None:
        key = (page_number, page_size)
        known = self._pages.get(key)
        if known is None or known[0] != content:
            return None
        self._pages.move_to_end(key)
        return known[1]

    def remember(self, content: bytes, page: ExecutionPage) -> None:
        key = (page.page_number, page.page_size)
        self._pages[key] = (content, page)
        self._pages.move_to_end(key)
        while len(self._pages) > self._capacity:
            self._pages.popitem(last=False)
