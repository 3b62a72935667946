"""Audit regressions of the pipeline: exponential-histogram quantiles over the last interval."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from paca_otel.pipeline.reader import StoreMetricReader
from paca_otel.pipeline.store import SeriesStore


@pytest.fixture
def exp_histogram() -> Iterator[tuple[Histogram, StoreMetricReader]]:
    """An exponential-bucket histogram ``lat`` (at most 20 buckets) and the store reader."""
    reader = StoreMetricReader()
    view = View(instrument_name="lat", aggregation=ExponentialBucketHistogramAggregation(20))
    provider = MeterProvider(metric_readers=[reader], views=[view])
    histogram = provider.get_meter("t").create_histogram("lat")
    assert isinstance(histogram, Histogram)
    yield histogram, reader
    provider.shutdown()


def _quantile(store: SeriesStore, suffix: str, at: float) -> float:
    [(_, value)] = store.latest(f"lat.{suffix}", at=at, lookback=0.0)
    return value


def test_exponential_quantiles_follow_values_beyond_the_old_range(
    exp_histogram: tuple[Histogram, StoreMetricReader],
) -> None:
    """Slower requests that grow the bucket array still give last-interval quantiles."""
    histogram, reader = exp_histogram
    store = SeriesStore()
    for i in range(1000):
        histogram.record(0.100 + (i % 100) / 1000)  # 100..199 ms
    reader.collect_into(store, 1.0)
    for _ in range(20):
        histogram.record(0.250)  # the incident: every request is slower than ever before
    reader.collect_into(store, 2.0)
    assert _quantile(store, "p50", 2.0) == pytest.approx(0.25, rel=0.1)  # lifetime: ~0.15


def test_exponential_quantiles_survive_a_rescale(
    exp_histogram: tuple[Histogram, StoreMetricReader],
) -> None:
    """A range that forces the SDK to lower the scale still gives last-interval quantiles."""
    histogram, reader = exp_histogram
    store = SeriesStore()
    for i in range(100):
        histogram.record(1.0 + i / 1000)
    reader.collect_into(store, 1.0)
    for _ in range(10):
        histogram.record(1000.0)  # 1000x the old range: 20 buckets need a much lower scale
    reader.collect_into(store, 2.0)
    assert _quantile(store, "p50", 2.0) > 500.0  # lifetime p50 would be ~1
    reader.collect_into(store, 3.0)
    assert store.latest("lat.p50", at=3.0, lookback=0.0) == []  # nothing new, no estimate
    histogram.record(1.05)
    reader.collect_into(store, 4.0)
    assert _quantile(store, "p50", 4.0) < 2.0  # back to the old values, at the new scale
