"""Table tests of `relay.domain.paging`: when a cycle stops reading pages, what it re-reads."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from relay.domain.paging import ScanPlan, StopReason, pick_refreshes
from relay.domain.state import TrackedExecution

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAGE_SIZE = 4


@dataclass(frozen=True)
class Page:
    ids: tuple[str, ...]
    unchanged: frozenset[str] = frozenset()
    raw_count: int | None = None  # defaults to len(ids); more when items were invalid


def page(spec: str, *, unchanged: str = "", raw_count: int | None = None) -> Page:
    """`page("a b c d", unchanged="c d")`."""
    return Page(tuple(spec.split()), frozenset(unchanged.split()), raw_count)


def full(prefix: str) -> Page:
    return page(" ".join(f"{prefix}{i}" for i in range(PAGE_SIZE)))


@dataclass(frozen=True)
class Scan:
    pages: tuple[Page, ...]
    running: frozenset[str] = frozenset()
    first_poll: bool = False
    max_pages: int = 10


@dataclass(frozen=True)
class Outcome:
    pages_read: int
    reason: StopReason
    uncovered: frozenset[str] = frozenset()


def run(scan: Scan) -> tuple[ScanPlan, list[str]]:
    """Feed pages to the plan while it asks for them; returns it and the ids processed."""
    plan = ScanPlan.start(
        tracked_running=scan.running, max_pages=scan.max_pages, first_poll=scan.first_poll
    )
    processed: list[str] = []
    while plan.should_read_next:
        current = scan.pages[plan.next_page - 1]
        processed.extend(plan.unseen(current.ids))
        plan = plan.after_page(
            ids=current.ids,
            raw_count=len(current.ids) if current.raw_count is None else current.raw_count,
            page_size=PAGE_SIZE,
            unchanged_ids=current.unchanged,
        )
    return plan, processed


SCANS = {
    "first poll reads to the end of the list": (
        Scan((full("a"), full("b"), page("c0 c1")), first_poll=True),
        Outcome(3, "end_of_list"),
    ),
    "first poll ignores known items": (
        Scan((page("a b c d", unchanged="a b c d"), page("e")), first_poll=True),
        Outcome(2, "end_of_list"),
    ),
    "first poll is bounded by max_pages": (
        Scan((full("a"), full("b"), full("c"), full("d")), first_poll=True, max_pages=3),
        Outcome(3, "max_pages"),
    ),
    "steady state: one page with a known item, nothing running": (
        Scan((page("n1 n2 k1 k2", unchanged="k2"), full("x"))),
        Outcome(1, "caught_up"),
    ),
    "steady state: running covered by the first page": (
        Scan((page("n1 r1 k1 r2", unchanged="k1"), full("x")), running=frozenset({"r1", "r2"})),
        Outcome(1, "caught_up"),
    ),
    "a known but changed item is not known history": (
        Scan((page("n1 n2 n3 c1"), page("k1 k2 k3 k4", unchanged="k1"), full("x"))),
        Outcome(2, "caught_up"),
    ),
    "many changes: reads until known history": (
        Scan((full("n"), full("m"), page("m9 k1 k2 k3", unchanged="k3"), full("x"))),
        Outcome(3, "caught_up"),
    ),
    "continues while running is uncovered": (
        Scan(
            (page("n1 k1 k2 k3", unchanged="k1"), page("k4 r1 r2 k5"), full("x")),
            running=frozenset({"r1", "r2"}),
        ),
        Outcome(2, "caught_up"),
    ),
    "one far running execution costs one extra page": (
        Scan(
            (page("n1 k1 k2 k3", unchanged="k1"), full("x"), full("y"), full("z")),
            running=frozenset({"far"}),
        ),
        Outcome(2, "coverage_budget", frozenset({"far"})),
    ),
    "three far running executions cost three extra pages": (
        Scan(
            (page("k1 k2 k3 k4", unchanged="k1"), *(full(p) for p in "vwxyz")),
            running=frozenset({"f1", "f2", "f3"}),
        ),
        Outcome(4, "coverage_budget", frozenset({"f1", "f2", "f3"})),
    ),
    "covering a running execution spends no budget": (
        Scan(
            (page("k1 k2 k3 k4", unchanged="k1"), page("r1 x1 x2 x3"), *(full(p) for p in "yzw")),
            running=frozenset({"r1", "f1", "f2"}),
        ),
        Outcome(4, "coverage_budget", frozenset({"f1", "f2"})),
    ),
    "a dense band of running executions is read to its end": (
        Scan(
            (
                page("k1 k2 k3 k4", unchanged="k1"),
                *(page(f"r{i}a r{i}b x{i} y{i}") for i in range(6)),
                full("z"),
            ),
            running=frozenset(f"r{i}{s}" for i in range(6) for s in "ab"),
        ),
        Outcome(7, "caught_up"),
    ),
    "running beyond max_pages is left uncovered": (
        Scan(
            (page("k1 k2 k3 k4", unchanged="k1"), *(full(p) for p in "vwxyz")),
            running=frozenset({f"f{i}" for i in range(9)}),
            max_pages=3,
        ),
        Outcome(3, "max_pages", frozenset({f"f{i}" for i in range(9)})),
    ),
    "no known history: bounded by max_pages": (
        Scan((full("a"), full("b"), full("c"), full("d")), max_pages=2),
        Outcome(2, "max_pages"),
    ),
    "short page ends the list even with running uncovered": (
        Scan((page("n1 n2"),), running=frozenset({"gone"})),
        Outcome(1, "end_of_list", frozenset({"gone"})),
    ),
    "empty page ends the list": (
        Scan((full("n"), page("")), running=frozenset({"gone"})),
        Outcome(2, "end_of_list", frozenset({"gone"})),
    ),
    "invalid items keep a page full": (
        Scan((page("n1 n2", raw_count=PAGE_SIZE), page("k1", unchanged="k1"))),
        Outcome(2, "end_of_list"),
    ),
    "a page of only invalid items does not end the list": (
        Scan((page("", raw_count=PAGE_SIZE), page("k1 k2 k3 k4", unchanged="k2"))),
        Outcome(2, "caught_up"),
    ),
    "a shifted duplicate is not known history": (
        # Page 1 was all new; two more arrived before page 2, which repeats n2 n3. They
        # are unchanged by then, but only prove the list shifted.
        Scan(
            (
                page("n0 n1 n2 n3"),
                page("n2 n3 n4 n5", unchanged="n2 n3"),
                page("k1 k2 k3 k4", unchanged="k1"),
            )
        ),
        Outcome(3, "caught_up"),
    ),
    "a shifted duplicate covers a running execution once": (
        Scan(
            (page("n0 n1 n2 r1"), page("r1 k1 k2 k3", unchanged="k1")),
            running=frozenset({"r1"}),
        ),
        Outcome(2, "caught_up"),
    ),
}


@pytest.mark.parametrize(("scan", "outcome"), SCANS.values(), ids=SCANS.keys())
def test_scan(scan: Scan, outcome: Outcome) -> None:
    plan, _ = run(scan)

    assert (plan.pages_read, plan.stop_reason, plan.uncovered_running) == (
        outcome.pages_read,
        outcome.reason,
        outcome.uncovered,
    )
    assert not plan.should_read_next


def test_shifted_pages_process_every_id_once() -> None:
    plan, processed = run(
        Scan(
            (
                page("n0 n1 n2 n3"),
                page("n2 n3 n4 n5"),
                page("n5 k1 k2 k3", unchanged="n5 k1"),
            ),
            running=frozenset({"n3"}),
        )
    )

    assert processed == ["n0", "n1", "n2", "n3", "n4", "n5", "k1", "k2", "k3"]
    assert plan.seen == frozenset(processed)
    assert plan.uncovered_running == frozenset()


def test_unseen_drops_repeats_within_a_page() -> None:
    plan = ScanPlan.start(tracked_running=(), max_pages=2, first_poll=False)
    plan = plan.after_page(ids=["a"], raw_count=4, page_size=4, unchanged_ids=())

    assert plan.unseen(["b", "a", "c", "b"]) == ["b", "c"]


def test_plan_starts_at_page_one() -> None:
    plan = ScanPlan.start(tracked_running={"r1"}, max_pages=1, first_poll=False)

    assert (plan.next_page, plan.should_read_next, plan.stop_reason) == (1, True, None)
    assert plan.uncovered_running == frozenset({"r1"})


def test_reading_past_the_end_is_a_bug() -> None:
    plan = ScanPlan.start(tracked_running=(), max_pages=5, first_poll=False)
    plan = plan.after_page(ids=["a"], raw_count=1, page_size=4, unchanged_ids=())

    with pytest.raises(ValueError, match="end_of_list"):
        plan.after_page(ids=["b"], raw_count=1, page_size=4, unchanged_ids=())


def test_max_pages_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pages"):
        ScanPlan.start(tracked_running=(), max_pages=0, first_poll=True)


@pytest.mark.parametrize("changed", [0, 1, 99, 100, 101, 250])
def test_steady_state_cost(changed: int) -> None:
    # Issue 3: at most ceil(changed / page_size) + 1 list requests when nothing old runs.
    page_size = 100
    history = [f"n{i}" for i in range(changed)] + [f"k{i}" for i in range(1000)]
    plan = ScanPlan.start(tracked_running={"n0"} if changed else (), max_pages=20, first_poll=False)
    while plan.should_read_next:
        start = (plan.next_page - 1) * page_size
        ids = history[start : start + page_size]
        plan = plan.after_page(
            ids=ids,
            raw_count=len(ids),
            page_size=page_size,
            unchanged_ids={i for i in ids if i.startswith("k")},
        )

    assert plan.pages_read <= math.ceil(changed / page_size) + 1
    assert plan.stop_reason == "caught_up"


# --- refreshes ---------------------------------------------------------------------


def tracked(
    execution_id: str, *, seen: int, status: str = "running", purged: bool = False
) -> TrackedExecution:
    return TrackedExecution(
        source="prod",
        id=execution_id,
        status=status,
        credits_used=0.0,
        kind="agent",
        responder_id="responder-1",
        parent_id=None,
        agent_id="agent-1",
        workflow_id=None,
        created_at=T0,
        updated_at=T0,
        started_at=T0,
        ended_at=None,
        is_purged=purged,
        last_seen_at=T0 + timedelta(seconds=seen),
        reported_statuses=frozenset({status}),
    )


REFRESHES = {
    "least recently seen first": (
        [tracked("a", seen=3), tracked("b", seen=1), tracked("c", seen=2)],
        {"a", "b", "c"},
        2,
        ["b", "c"],
    ),
    "ties broken by id": (
        [tracked("c", seen=1), tracked("a", seen=1), tracked("b", seen=0)],
        {"a", "b", "c"},
        3,
        ["b", "a", "c"],
    ),
    "covered ones are not re-read": (
        [tracked("a", seen=0), tracked("b", seen=1)],
        {"b"},
        5,
        ["b"],
    ),
    "purged and finished ones are not re-read": (
        [
            tracked("a", seen=0, purged=True),
            tracked("b", seen=1, status="failed"),
            tracked("c", seen=2, status="vanished"),
            tracked("d", seen=3),
        ],
        {"a", "b", "c", "d"},
        5,
        ["d"],
    ),
    "no budget": ([tracked("a", seen=0)], {"a"}, 0, []),
    "duplicate states are read once": (
        [tracked("a", seen=0), tracked("a", seen=0)],
        {"a"},
        5,
        ["a"],
    ),
}


@pytest.mark.parametrize(
    ("running", "uncovered", "limit", "expected"), REFRESHES.values(), ids=REFRESHES.keys()
)
def test_pick_refreshes(
    running: list[TrackedExecution], uncovered: set[str], limit: int, expected: list[str]
) -> None:
    assert pick_refreshes(running, uncovered=uncovered, limit=limit) == expected


@pytest.mark.parametrize(("count", "limit"), [(1, 1), (5, 1), (7, 3), (10, 5), (50, 7), (3, 10)])
def test_refreshes_are_round_robin(count: int, limit: int) -> None:
    # Each cycle re-reads what it picks (last_seen_at = that cycle's time). Whatever the
    # initial order, every uncovered execution is re-read in every window of
    # ceil(count / limit) consecutive cycles: none starves.
    states = {f"r{i:02d}": tracked(f"r{i:02d}", seen=(i * 7919) % count) for i in range(count)}
    window = math.ceil(count / limit)
    per_cycle: list[set[str]] = []
    for cycle in range(1, 4 * window + 1):
        picked = pick_refreshes(states.values(), uncovered=states.keys(), limit=limit)
        assert len(picked) == min(limit, count)
        for execution_id in picked:
            states[execution_id] = replace(
                states[execution_id], last_seen_at=T0 + timedelta(hours=cycle)
            )
        per_cycle.append(set(picked))

    for start in range(len(per_cycle) - window + 1):
        assert set().union(*per_cycle[start : start + window]) == set(states)
