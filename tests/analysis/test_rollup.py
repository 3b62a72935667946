"""Roll-ups: buckets keep min, max, sum and count; NaN stays visible; points are columns."""

from __future__ import annotations

import math

from paca_otel.analysis._rollup import RangePoints, merge, rollup
from paca_otel.analysis.source import RangePoint


def test_buckets_keep_min_max_sum_and_count() -> None:
    """Rows are grouped by bucket start; rolling up twice equals rolling up once."""
    stamps = [0, 10, 20, 60, 70, 130]
    values = [1.0, 3.0, 2.0, 5.0, 4.0, 9.0]
    raw = (stamps, values, values, values, [1.0] * 6)
    once = rollup(raw, 60)
    assert once == (
        [0, 60, 120],
        [1.0, 4.0, 9.0],
        [3.0, 5.0, 9.0],
        [6.0, 9.0, 9.0],
        [3.0, 2.0, 1.0],
    )
    assert rollup(rollup(raw, 30), 60) == once


def test_origin_shifts_bucket_boundaries() -> None:
    """Query steps start at the query's start, not at the epoch."""
    stamps = [5, 14, 15, 24]
    ones = [1.0] * 4
    assert rollup((stamps, ones, ones, ones, ones), 10, origin=5)[0] == [5, 15]


def test_nan_in_a_bucket_stays_visible() -> None:
    """A NaN sample makes its bucket's min and max NaN instead of being skipped."""
    values = [1.0, math.nan, 3.0]
    _, mins, maxs, _, counts = rollup(([0, 1, 2], values, values, values, [1.0] * 3), 10)
    assert math.isnan(mins[0])
    assert math.isnan(maxs[0])
    assert counts == [3.0]


def test_merge_concatenates_in_order() -> None:
    """Parts from two tiers become one column set."""
    a = ([0], [1.0], [1.0], [1.0], [1.0])
    b = ([60], [2.0], [2.0], [2.0], [1.0])
    assert merge([a, b]) == ([0, 60], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 1.0])
    assert merge([]) == ([], [], [], [], [])


def test_range_points_mean_and_columns() -> None:
    """Values are sum / count; timestamps are seconds; items are RangePoint."""
    points = RangePoints(([0, 60_000], [1.0, 2.0], [3.0, 2.0], [6.0, 2.0], [3.0, 1.0]))
    assert points.values == [2.0, 2.0]
    assert points.timestamps == [0.0, 60.0]
    assert list(points) == [
        RangePoint(0.0, 2.0, 1.0, 3.0, 6.0, 3),
        RangePoint(60.0, 2.0, 2.0, 2.0, 2.0, 1),
    ]
    assert points != [RangePoint(0.0, 2.0, 1.0, 3.0, 6.0, 3)]
