"""Where tracked executions are in the list (domain.positions): anchored by page reads,
moved down by arrivals, corrected by what a page shows."""

from __future__ import annotations

import pytest

from relay.domain.positions import ListPositions


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_an_execution_moves_down_one_place_per_arrival() -> None:
    top = _ids("a", 10)
    positions = ListPositions(page_size=10).after_page(1, top, now_s=0.0, keep=top)
    assert positions.page_of("a9", now_s=0.0) == 1
    # Three new executions arrived: the top now shows them, then a0..a6.
    shifted = ["n0", "n1", "n2", *top[:7]]
    positions = positions.after_page(1, shifted, now_s=10.0, keep=top)
    assert positions.arrivals == 3
    assert positions.page_of("a9", now_s=10.0) == 2
    assert positions.arrival_rate_per_s == pytest.approx(0.3 * 0.3)


def test_unseen_arrivals_are_estimated_from_the_rate() -> None:
    positions = ListPositions(page_size=10, arrival_rate_per_s=1.0)
    positions = positions.after_page(1, _ids("a", 10), now_s=0.0, keep=["a5"])
    assert positions.page_of("a5", now_s=0.0) == 1
    # Five seconds at one a second: index 5 + 5 -> page 2.
    assert positions.page_of("a5", now_s=5.0) == 2


def test_a_deep_page_corrects_the_count_with_the_median_of_what_it_shows() -> None:
    deep = _ids("d", 10)
    positions = ListPositions(page_size=10).after_page(5, deep, now_s=0.0, keep=deep)
    # Twelve arrived unseen: page 6 now shows two others, then d0..d7; d8, d9 moved on
    # to page 7.
    later = ["x0", "x1", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"]
    positions = positions.after_page(6, later, now_s=1.0, keep=deep)
    assert positions.arrivals == 12
    assert positions.page_of("d9", now_s=1.0) == 7
    assert positions.page_of("d0", now_s=1.0) == 6


def test_an_execution_missing_from_the_page_it_belongs_on_loses_its_anchor() -> None:
    ids = _ids("a", 10)
    positions = ListPositions(page_size=10).after_page(2, ids, now_s=0.0, keep=ids)
    # The page lacks a4 while the others are where expected (deleted upstream, say).
    shown = [i for i in ids if i != "a4"] + ["b0"]
    positions = positions.after_page(2, shown, now_s=1.0, keep=ids)
    assert positions.page_of("a4", now_s=1.0) is None
    assert positions.page_of("a3", now_s=1.0) == 2


def test_only_kept_executions_stay_anchored_and_forget_drops_them() -> None:
    ids = _ids("a", 10)
    positions = ListPositions(page_size=10).after_page(1, ids, now_s=0.0, keep=["a1", "a2"])
    assert set(positions.anchors) == {"a1", "a2"}
    positions = positions.forget(["a1"])
    assert set(positions.anchors) == {"a2"}
    assert positions.forget(["zz"]) is positions


def test_the_count_never_goes_down() -> None:
    ids = _ids("a", 10)
    positions = ListPositions(page_size=10).after_page(1, ids, now_s=0.0, keep=ids)
    positions = positions.after_page(1, ["n0", "n1", *ids[:8]], now_s=1.0, keep=ids)
    assert positions.arrivals == 2
    # A page that would imply fewer arrivals (items deleted above) keeps the count.
    positions = positions.after_page(1, ids, now_s=2.0, keep=ids)
    assert positions.arrivals == 2
