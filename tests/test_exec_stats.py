"""Execution statistics maths (`relay.domain.exec_stats`) and their charts
(`relay.http.svg_charts`), as tables; hypothesis for the histogram percentile."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.exec_stats import (
    BucketCount,
    bin_width_ms,
    failure_ratio,
    histogram_rank,
    ms_bin,
    nearest_rank,
    stats_rows,
)
from relay.http.svg_charts import bar_chart, bar_heights

EVIL = '<script>alert("x")</script>&"quoted"'
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("values", "quantile", "expected"),
    [
        ([], 0.95, None),
        ([7.0], 0.95, 7.0),
        ([3.0, 1.0, 2.0], 0.5, 2.0),
        ([float(n) for n in range(1, 21)], 0.95, 19.0),  # rank ceil(19.0) = 19
        ([float(n) for n in range(1, 101)], 0.95, 95.0),
        ([float(n) for n in range(1, 102)], 0.95, 96.0),  # rank ceil(95.95) = 96
        ([1.0, 1.0, 1.0, 50.0], 0.95, 50.0),
    ],
)
def test_nearest_rank(values: list[float], quantile: float, expected: float | None) -> None:
    assert nearest_rank(values, quantile=quantile) == expected


@pytest.mark.parametrize(
    ("ms", "bin_ms", "width_ms"),
    [
        (-5, 0, 1),
        (0, 0, 1),
        (7, 7, 1),
        (99, 99, 1),
        (100, 100, 10),
        (1234, 1200, 100),
        (1299, 1200, 100),
        (87_654, 87_000, 1000),
        (30_000_001, 30_000_000, 1_000_000),
    ],
)
def test_duration_bins_keep_two_significant_digits(ms: int, bin_ms: int, width_ms: int) -> None:
    assert ms_bin(ms) == bin_ms
    assert bin_width_ms(bin_ms) == width_ms
    assert bin_ms <= max(ms, 0) < bin_ms + width_ms


@pytest.mark.parametrize(
    ("histogram", "expected_s"),
    [
        ({}, None),
        ({0: 0}, None),
        ({500: 1}, 0.51),  # one value in [500, 510): the rank is the whole bin
        ({10: 19, 20: 1}, 0.011),  # rank 19 of 20 is the last of the 10 ms bin
        ({10: 18, 20: 2}, 0.0205),  # rank 19: the first of two in [20, 21)
        ({1000: 100}, 1.095),  # rank 95 of 100 in [1000, 1100)
    ],
)
def test_histogram_rank(histogram: dict[int, int], expected_s: float | None) -> None:
    result = histogram_rank(histogram)
    if expected_s is None:
        assert result is None
    else:
        assert result == pytest.approx(expected_s)


@given(st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=300))
def test_the_histogram_percentile_lies_in_the_bin_of_the_exact_one(durations_ms: list[int]) -> None:
    histogram: dict[int, int] = {}
    for ms in durations_ms:
        histogram[ms_bin(ms)] = histogram.get(ms_bin(ms), 0) + 1
    estimate_s = histogram_rank(histogram)
    exact_ms = nearest_rank([float(ms) for ms in durations_ms])
    assert estimate_s is not None
    assert exact_ms is not None
    lower = ms_bin(int(exact_ms))
    assert lower / 1000 <= estimate_s <= (lower + bin_width_ms(lower)) / 1000
    assert math.isclose(estimate_s * 1000, exact_ms, rel_tol=0.1, abs_tol=1)


@pytest.mark.parametrize(
    ("failed", "executions", "ratio"), [(0, 0, None), (0, 5, 0.0), (1, 4, 0.25), (3, 3, 1.0)]
)
def test_failure_ratio(failed: int, executions: int, ratio: float | None) -> None:
    assert failure_ratio(failed=failed, executions=executions) == ratio


def test_stats_rows_total_each_source_then_its_responders_busiest_first() -> None:
    counts = [
        BucketCount("prod", "r-quiet", 0, executions=1, failed=0, credits=1.0),
        BucketCount("prod", "r-busy", 0, executions=4, failed=1, credits=2.0),
        BucketCount("prod", "r-busy", 2, executions=6, failed=3, credits=3.5),
        BucketCount("prod", "r-busy", 9, executions=1, failed=0, credits=0.5),  # clamped
        BucketCount("staging", "r-quiet", 1, executions=2, failed=2, credits=0.0),
    ]
    durations = {("prod", "r-busy"): {1000: 11}, ("prod", "r-quiet"): {50: 1}}
    rows = stats_rows(
        counts,
        buckets=3,
        durations_ms=durations,
        names={"r-busy": EVIL},
        sources=["staging", "prod"],
    )
    table = [
        (
            r.source,
            r.responder_id,
            r.responder,
            r.executions,
            r.failed,
            r.credits,
            r.executions_series,
            r.failed_series,
        )
        for r in rows
    ]
    assert table == [
        ("staging", None, None, 2, 2, 0.0, (0, 2, 0), (0, 2, 0)),
        ("staging", "r-quiet", "r-quiet", 2, 2, 0.0, (0, 2, 0), (0, 2, 0)),
        ("prod", None, None, 12, 4, 7.0, (5, 0, 7), (1, 0, 3)),
        ("prod", "r-busy", EVIL, 11, 4, 6.0, (4, 0, 7), (1, 0, 3)),
        ("prod", "r-quiet", "r-quiet", 1, 0, 1.0, (1, 0, 0), (0, 0, 0)),
    ]
    by_key = {(r.source, r.responder_id): r for r in rows}
    assert by_key[("prod", "r-busy")].ratio == pytest.approx(4 / 11)
    assert by_key[("staging", None)].p95_s is None  # no durations known
    # The source's histogram is the sum of its responders': rank 12 of 12 is in [1000, 1100).
    assert by_key[("prod", None)].p95_s == pytest.approx(1.1)
    assert by_key[("prod", "r-quiet")].p95_s == pytest.approx(0.051)


@pytest.mark.parametrize(
    ("values", "height", "top", "expected"),
    [
        ([], 40, None, []),
        ([0, 0], 40, None, [0.0, 0.0]),
        ([1, 2, 4], 40, None, [10.0, 20.0, 40.0]),
        ([1, 3], 30, 6, [5.0, 15.0]),
        ([-2, 3], 30, None, [0.0, 30.0]),
    ],
)
def test_bar_heights(
    values: list[int], height: float, top: int | None, expected: list[float]
) -> None:
    assert bar_heights(values, height=height, top=top) == expected


def test_a_chart_is_well_formed_escaped_titled_and_to_scale() -> None:
    svg = bar_chart([4, 0, 2], [1, 0, 2], title=EVIL, labels=["a<b", "b", "c"], height=40)
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == f"{EVIL}: 6 executions, 3 failed"
    groups = root.findall(f"{SVG}g")
    assert [g.get("data-bucket") for g in groups] == ["0", "1", "2"]
    assert groups[0].findtext(f"{SVG}title") == "a<b: 4 executions, 1 failed"
    heights = {
        (g.get("data-bucket"), r.get("class")): float(r.get("height", "0"))
        for g in groups
        for r in g.findall(f"{SVG}rect")
    }
    # The tallest bar fills the chart; failures share the scale; empty buckets draw nothing.
    assert heights == {
        ("0", "runs"): 40.0,
        ("0", "fails"): 10.0,
        ("2", "runs"): 20.0,
        ("2", "fails"): 20.0,
    }


def test_an_empty_chart_draws_a_baseline_only() -> None:
    root = ET.fromstring(bar_chart([0] * 12, [0] * 12, title="quiet", labels=["x"] * 12))
    assert root.findall(f".//{SVG}rect") == []
    assert root.find(f"{SVG}line") is not None
    assert root.findtext(f"{SVG}title") == "quiet: 0 executions, 0 failed"


def test_a_chart_needs_one_value_per_bucket() -> None:
    with pytest.raises(ValueError, match="one executions, failed and label"):
        bar_chart([1, 2], [0], title="t", labels=["a", "b"])
