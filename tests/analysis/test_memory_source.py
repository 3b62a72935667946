"""The in-memory SeriesSource answers range queries like the history store."""

from __future__ import annotations

import math

import pytest

from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.analysis.source import LabelMatcher, SeriesSource
from paca_otel.errors import ConfigError


def test_is_a_series_source_and_aggregates_steps() -> None:
    """Each step holds the mean, min, max, sum and count of its samples; gaps stay gaps."""
    source = MemorySeriesSource()
    assert isinstance(source, SeriesSource)
    source.add("cpu", {}, [(0, 1.0), (5, 3.0), (10, 5.0), (30, 7.0), (15, math.nan)])
    [series] = source.query_range("cpu", start=0, end=40, step=10)
    assert [(p.timestamp, p.value, p.min, p.max, p.count) for p in series.points] == [
        (0, 2.0, 1.0, 3.0, 2),
        (10, 5.0, 5.0, 5.0, 1),
        (30, 7.0, 7.0, 7.0, 1),
    ]
    assert source.names() == ["cpu"]


def test_matchers_select_label_sets() -> None:
    """Label matchers (including regex and missing-as-empty) select series."""
    source = MemorySeriesSource()
    source.add("latency_p95", {"route": "/a", "method": "GET"}, [(0, 1.0)])
    source.add("latency_p95", {"route": "/b", "method": "GET"}, [(0, 2.0)])
    source.add("latency_p95", {}, [(0, 3.0)])
    query = source.query_range
    assert len(query("latency_p95", start=0, end=1, step=1)) == 3
    only_a = query("latency_p95", [LabelMatcher("route", "=~", "/a")], start=0, end=1, step=1)
    assert [s.labels for s in only_a] == [{"method": "GET", "route": "/a"}]
    total = query("latency_p95", [LabelMatcher("route", "=", "")], start=0, end=1, step=1)
    assert [s.labels for s in total] == [{}]


def test_out_of_order_points_and_bad_queries() -> None:
    """Points added out of order are sorted; a bad step or range is a clear error."""
    source = MemorySeriesSource()
    source.add("x", {}, [(10, 2.0), (0, 1.0)])
    [series] = source.query_range("x", start=0, end=10, step=1)
    assert [p.value for p in series.points] == [1.0, 2.0]
    with pytest.raises(ConfigError, match="step"):
        source.query_range("x", start=0, end=10, step=0)
    with pytest.raises(ConfigError, match="before"):
        source.query_range("x", start=10, end=0, step=1)
    with pytest.raises(ConfigError, match="name"):
        source.add("", {}, [])
