"""Audit regressions of the pipeline: exponential-histogram quantiles over the last interval."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

from paca_otel.pipeline.store import SeriesStore
from tests.pipeline.test_reader import StoreMetricReader


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


def test_staleness_marker_ends_a_series_for_instant_and_window_reads() -> None:
    """After mark_stale, latest() has nothing and window reads skip the marker."""
    from paca_otel.pipeline.store import SeriesStore

    store = SeriesStore()
    labels = (("route", "/a"),)
    store.append("latency_p95", labels, 0.8, 10.0)
    store.mark_stale("latency_p95", labels, 20.0)
    store.mark_stale("latency_p95", labels, 30.0)  # already stale: no second marker
    store.mark_stale("never_seen", labels, 30.0)  # no series: nothing created
    assert store.latest("latency_p95", at=25.0) == []
    (series,) = store.select("latency_p95", start=0.0, end=40.0)
    assert list(series.values) == [0.8]
    assert "never_seen" not in store
    store.append("latency_p95", labels, 0.2, 40.0)
    assert store.latest("latency_p95", at=40.0) == [(labels, 0.2)]


def test_latency_alert_resolves_when_traffic_stops() -> None:
    """latency_p95 > 0.5 fires under slow traffic and resolves once it stops (no lingering)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    from paca_otel.alerting.engine import RuleEngine
    from paca_otel.alerting.rules import Rule
    from paca_otel.pipeline.pipeline import Pipeline

    now = [1000.0]
    pipeline = Pipeline(clock=lambda: now[0], red_window=60.0)
    provider = TracerProvider()
    provider.add_span_processor(pipeline.span_processor)
    tracer = provider.get_tracer("t")
    engine = RuleEngine(pipeline.store, clock=lambda: now[0], collect=pipeline.collect)
    engine.add_rule(Rule(name="slow", condition="latency_p95 > 0.5"))
    start_ns = int(now[0] * 1e9)
    for _ in range(20):
        span = tracer.start_span(
            "GET /a", kind=SpanKind.SERVER, attributes={"http.route": "/a"}, start_time=start_ns
        )
        span.end(end_time=start_ns + 900_000_000)  # 0.9 s
    firing = engine.evaluate_once(now[0])
    assert [e.state.value for e in firing] == ["firing", "firing"]  # per route and overall
    now[0] += 120.0  # two windows without a request
    resolved = engine.evaluate_once(now[0])
    assert sorted(e.state.value for e in resolved) == ["resolved", "resolved"]
    provider.shutdown()
