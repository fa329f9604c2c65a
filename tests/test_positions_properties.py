"""The shift order `ListPositions` keeps from read to read (domain.positions): whatever
pages are read, whatever arrives, is deleted or forgotten, it holds exactly the anchors'
shifts, sorted, and a read that looks only near its page loses the same anchors as one
that checks every anchor."""

from __future__ import annotations

import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.domain.positions import ListPositions

_PAGE_SIZE = 5

_step = st.tuples(
    st.integers(min_value=1, max_value=6),  # the page read
    st.integers(min_value=0, max_value=4),  # executions that arrived before it
    st.integers(min_value=0, max_value=2),  # executions deleted from the list before it
    st.floats(min_value=0.0, max_value=5.0),  # seconds since the last read
    st.integers(min_value=0, max_value=2),  # tracked executions forgotten after it
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(_step, min_size=1, max_size=30),
    rate=st.floats(min_value=0.0, max_value=2.0),
)
def test_the_shift_order_is_the_anchors_sorted_and_reads_lose_what_a_full_scan_loses(
    steps: list[tuple[int, int, int, float, int]], rate: float
) -> None:
    listed = [f"e{i}" for i in range(30)]  # newest first
    made = len(listed)
    tracked = set(listed[::2])
    positions = ListPositions(page_size=_PAGE_SIZE, arrival_rate_per_s=rate)
    now_s = 0.0
    for page, arrived, deleted, wait_s, forgotten in steps:
        now_s += wait_s
        for _ in range(arrived):
            listed.insert(0, f"e{made}")
            tracked.add(f"e{made}")
            made += 1
        for execution_id in listed[3 : 3 + deleted]:  # deletions the model cannot explain
            listed.remove(execution_id)
        shown = listed[(page - 1) * _PAGE_SIZE : page * _PAGE_SIZE]
        # Kept as a caller passes them: a dict's keys, and a few more beside them.
        also = frozenset(sorted(tracked)[:3])
        live = {execution_id: None for execution_id in tracked - also}
        after = positions.after_page(page, shown, now_s=now_s, keep=live.keys(), also_keep=also)
        expected = _after_page_by_full_scan(positions, page, shown, now_s=now_s, keep=tracked)
        assert dict(after.anchors) == expected
        assert after.by_shift == _shifts(after)
        positions = after
        gone = sorted(tracked)[:forgotten]
        tracked.difference_update(gone)
        positions = positions.forget(gone)
        assert positions.by_shift == _shifts(positions)


def _shifts(positions: ListPositions) -> tuple[tuple[float, str], ...]:
    """The shift order computed from scratch."""
    return ListPositions(page_size=_PAGE_SIZE, anchors=dict(positions.anchors)).by_shift or ()


def _after_page_by_full_scan(
    positions: ListPositions, page: int, ids: list[str], *, now_s: float, keep: set[str]
) -> dict[str, tuple[int, float]]:
    """The anchors after a read of `page`, every anchor checked for being lost."""

    offset = (page - 1) * _PAGE_SIZE
    implied = [
        anchor.arrivals + (offset + i - anchor.place)
        for i, execution_id in enumerate(ids)
        if (anchor := positions.anchors.get(execution_id)) is not None
    ]
    if implied:
        anchored_at = max(positions.arrivals, statistics.median(implied))
    else:
        anchored_at = positions.arrivals_at(now_s)
    lost = {
        execution_id
        for execution_id, (place, then) in positions.anchors.items()
        if offset <= max(0, round(place + anchored_at - then)) < offset + _PAGE_SIZE
        and execution_id not in ids
    }
    anchors = {
        execution_id: (anchor.place, anchor.arrivals)
        for execution_id, anchor in positions.anchors.items()
        if execution_id in keep and execution_id not in lost
    }
    for i, execution_id in enumerate(ids):
        if execution_id in keep:
            anchors[execution_id] = (offset + i, anchored_at)
    return anchors
