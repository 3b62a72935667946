"""Tests for the writer that puts the one collection's data into the series store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from paca_otel.pipeline._collection import Collection
from paca_otel.pipeline._reader import StoreWriter, bucket_quantile
from paca_otel.pipeline._store import Matcher, SeriesStore, labels_of


class StoreMetricReader(Collection):
    """The collection and a store writer together, as the pipeline uses them."""

    def __init__(self) -> None:
        super().__init__()
        self.writer = StoreWriter()

    def collect_into(self, store: SeriesStore, now: float) -> int:
        return self.writer.write(self.collect_now(now=now), store, now)


@pytest.fixture
def reader() -> Iterator[StoreMetricReader]:
    """A StoreMetricReader attached to a fresh MeterProvider."""
    reader = StoreMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]  # handy for the tests below
    yield reader
    provider.shutdown()


def test_counter_is_cumulative_per_attribute_set(reader: StoreMetricReader) -> None:
    """Counters land as cumulative totals, one series per attribute set, no resource labels."""
    counter = reader.provider.get_meter("t").create_counter("jobs")  # type: ignore[attr-defined]
    store = SeriesStore()
    counter.add(2, {"queue": "a"})
    counter.add(1, {"queue": "b"})
    assert reader.collect_into(store, 10.0) == 2
    counter.add(3, {"queue": "a"})
    reader.collect_into(store, 20.0)
    [series] = store.select("jobs", [Matcher("queue", "=", "a")], start=0.0, end=30.0)
    assert list(series.timestamps) == [10.0, 20.0]
    assert list(series.values) == [2.0, 5.0]
    assert series.labels == (("queue", "a"),)


def test_gauges_updown_and_observable(reader: StoreMetricReader) -> None:
    """Synchronous and observable gauges and up-down counters write their current value."""
    meter = reader.provider.get_meter("t")  # type: ignore[attr-defined]
    meter.create_gauge("temp").set(21.5, {"room": "x"})
    meter.create_up_down_counter("inflight").add(-3)

    def observe(_: CallbackOptions) -> list[Observation]:
        return [Observation(0.42, {"system.memory.state": "used"})]

    meter.create_observable_gauge("system.memory.utilization", callbacks=[observe])
    store = SeriesStore()
    reader.collect_into(store, 5.0)
    assert store.latest("temp", at=5.0) == [(labels_of({"room": "x"}), 21.5)]
    assert store.latest("inflight", at=5.0) == [((), -3.0)]
    assert store.latest("system.memory.utilization", at=5.0) == [
        ((("system.memory.state", "used"),), 0.42)
    ]


def test_histogram_count_sum_and_quantiles(reader: StoreMetricReader) -> None:
    """Histograms become .count/.sum (cumulative) and .p50/.p95/.p99 estimates."""
    histogram = reader.provider.get_meter("t").create_histogram("dur")  # type: ignore[attr-defined]
    for value in range(1, 101):  # 1..100 in the default buckets (..., 50, 75, 100, ...)
        histogram.record(float(value), {"route": "/a"})
    store = SeriesStore()
    assert reader.collect_into(store, 1.0) == 5
    route = [Matcher("route", "=", "/a")]
    assert store.latest("dur.count", route, at=1.0)[0][1] == 100.0
    assert store.latest("dur.sum", route, at=1.0)[0][1] == 5050.0
    p50 = store.latest("dur.p50", route, at=1.0)[0][1]
    p99 = store.latest("dur.p99", route, at=1.0)[0][1]
    assert p50 == pytest.approx(50.0)  # rank 50 is the top of the (25, 50] bucket
    assert 75.0 < p99 <= 100.0


def test_histogram_quantiles_cover_only_the_last_interval(reader: StoreMetricReader) -> None:
    """Quantiles use buckets filled since the previous collection; none when nothing new."""
    histogram = reader.provider.get_meter("t").create_histogram("dur")  # type: ignore[attr-defined]
    store = SeriesStore()
    for _ in range(100):
        histogram.record(1.0)
    reader.collect_into(store, 1.0)
    for _ in range(10):
        histogram.record(900.0)
    reader.collect_into(store, 2.0)
    assert store.latest("dur.p50", at=2.0)[0][1] > 750.0  # a lifetime p50 would be ~1
    assert store.latest("dur.count", at=2.0)[0][1] == 110.0
    reader.collect_into(store, 3.0)
    assert store.latest("dur.p50", at=3.0, lookback=0.0) == []
    assert store.latest("dur.count", at=3.0, lookback=0.0) == [((), 110.0)]


def test_exponential_histogram_quantiles() -> None:
    """Exponential-bucket histograms get quantile estimates within one bucket's error."""
    reader = StoreMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        views=[View(instrument_name="exp", aggregation=ExponentialBucketHistogramAggregation())],
    )
    try:
        histogram = provider.get_meter("t").create_histogram("exp")
        for value in range(1, 1001):
            histogram.record(value / 1000)
        store = SeriesStore()
        reader.collect_into(store, 1.0)
        p50 = store.latest("exp.p50", at=1.0)[0][1]
        p99 = store.latest("exp.p99", at=1.0)[0][1]
        assert p50 == pytest.approx(0.5, rel=0.05)
        assert p99 == pytest.approx(0.99, rel=0.05)
    finally:
        provider.shutdown()


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


def test_unattached_reader_writes_nothing() -> None:
    """A reader that is not on a MeterProvider collects nothing and does not raise."""
    assert StoreMetricReader().collect_into(SeriesStore(), 1.0) == 0


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 15.0), (0.25, 12.5), (0.75, 17.5), (1.0, 20.0)],
)
def test_bucket_quantile_interpolates(q: float, expected: float) -> None:
    """Linear interpolation inside the bucket holding the rank, like histogram_quantile."""
    # 10 observations in (10, 20]; bounds [10, 20] -> buckets (-inf,10], (10,20], (20,inf)
    assert bucket_quantile(q, [10.0, 20.0], [0, 10, 0]) == pytest.approx(expected)


def test_bucket_quantile_edges() -> None:
    """Empty histograms give None; open-ended buckets use min/max, or the last bound."""
    assert bucket_quantile(0.5, [1.0], [0, 0]) is None
    assert bucket_quantile(0.99, [1.0, 2.0], [0, 0, 5]) == 2.0
    assert bucket_quantile(0.99, [1.0, 2.0], [0, 0, 5], low=3.0, high=4.0) == pytest.approx(3.99)
    assert bucket_quantile(0.5, [1.0, 2.0], [4, 0, 0], low=0.5, high=0.9) == pytest.approx(0.7)
