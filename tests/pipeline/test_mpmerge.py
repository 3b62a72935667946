"""The multiprocess merge: sums, host-wide and per-pid metrics, dead workers, the archive."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from paca_otel.pipeline._mpfile import SUMMED, Flattener, Header, Source, template_of
from paca_otel.pipeline._mpmerge import Part, merge, to_metrics_data, to_schema
from paca_otel.pipeline._prometheus import families


def _worker(
    pid: int,
    value: float,
    *,
    routes: Sequence[str] = ("/a",),
    bounds: Sequence[float] | None = None,
    age: float = 0.0,
) -> Source:
    """A worker's source: every kind of metric, each ``value`` (times a kind's factor)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("app")
    counter = meter.create_counter("app.requests")
    histogram = meter.create_histogram(
        "app.duration", unit="s", explicit_bucket_boundaries_advisory=bounds
    )
    for route in routes:
        counter.add(value, {"route": route})
        histogram.record(value / 10, {"route": route})
    meter.create_up_down_counter("app.inflight").add(value)
    meter.create_gauge("app.temperature").set(value * 10)

    def host(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(value * 100, {"system.memory.state": "used"})

    def process(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(value * 11, {})

    system = provider.get_meter("paca_otel.system")
    system.create_observable_up_down_counter("system.memory.usage", [host], unit="By")
    system.create_observable_up_down_counter("process.memory.usage", [process], unit="By")
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    schema, values, start, _ = Flattener().flatten(data)
    header = Header(f"{pid}-t", pid, 0.0, "host", time.time() - age, False, start)
    return Source(header, template_of(schema), values)


def _points(data: MetricsData, name: str) -> list[NumberDataPoint | HistogramDataPoint]:
    found = [
        metric.data
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
    ]
    assert len(found) == 1, name
    return list(found[0].data_points)


def _value(data: MetricsData, name: str, **labels: str) -> float:
    matches = [
        p.value
        for p in _points(data, name)
        if isinstance(p, NumberDataPoint) and labels.items() <= dict(p.attributes or {}).items()
    ]
    assert len(matches) == 1, (name, labels, matches)
    return float(matches[0])


def _merged(parts: list[Part]) -> MetricsData:
    return to_metrics_data(merge(parts), Resource.create({"service.name": "s"}), time.time_ns())


def test_counters_and_histograms_sum_over_every_worker_dead_or_alive() -> None:
    """A dead worker's counts stay in the sums, so the service's counters never go down."""
    parts = [Part(_worker(1, 1), True), Part(_worker(2, 2), True), Part(_worker(3, 4), False)]
    data = _merged(parts)
    assert _value(data, "app.requests", route="/a") == 7
    (point,) = _points(data, "app.duration")
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 3
    assert abs(point.sum - 0.7) < 1e-9
    assert (point.min, point.max) == (0.1, 0.4)
    assert sum(point.bucket_counts) == 3


def test_gauges_and_process_metrics_are_per_live_worker_with_a_pid_label() -> None:
    """Like prometheus_client's ``all`` mode; a dead worker's gauges are gone."""
    parts = [Part(_worker(1, 1), True), Part(_worker(2, 2), True), Part(_worker(3, 4), False)]
    data = _merged(parts)
    assert _value(data, "app.temperature", pid="1") == 10
    assert _value(data, "app.temperature", pid="2") == 20
    assert len(_points(data, "app.temperature")) == 2
    assert {dict(p.attributes or {})["pid"] for p in _points(data, "process.memory.usage")} == {
        "1",
        "2",
    }
    assert _value(data, "app.inflight") == 3  # up-down: live workers only


def test_host_wide_metrics_come_once_from_the_freshest_live_worker() -> None:
    """system.* is reported once, from the first live part (the local one), never summed."""
    parts = [Part(_worker(3, 4), False), Part(_worker(2, 2), True), Part(_worker(1, 1), True)]
    data = _merged(parts)
    (point,) = _points(data, "system.memory.usage")
    assert isinstance(point, NumberDataPoint)
    assert point.value == 200
    assert "pid" not in (point.attributes or {})


def test_different_series_sets_are_unioned() -> None:
    """Workers that served different routes merge into the union of their series."""
    data = _merged([Part(_worker(1, 1, routes=["/a"]), True),
                    Part(_worker(2, 2, routes=["/a", "/b"]), True)])  # fmt: skip
    assert _value(data, "app.requests", route="/a") == 3
    assert _value(data, "app.requests", route="/b") == 2
    assert len(_points(data, "app.duration")) == 2


def test_histograms_with_other_bounds_are_left_out_and_counted() -> None:
    """Buckets of different bounds cannot be added: the later worker's are dropped, counted."""
    merged = merge([Part(_worker(1, 1), True), Part(_worker(2, 2, bounds=[1.0, 2.0]), True)])
    assert merged.dropped["multiprocess_bounds_mismatch"] == 1
    data = to_metrics_data(merged, Resource.get_empty(), time.time_ns())
    (point,) = _points(data, "app.duration")
    assert isinstance(point, HistogramDataPoint)
    assert point.count == 1
    assert _value(data, "app.requests", route="/a") == 3


def test_the_merged_data_renders_as_prometheus_families() -> None:
    """The SDK data classes come out right: counter, gauge, histogram families."""
    data = _merged([Part(_worker(1, 1), True), Part(_worker(2, 2), True)])
    types = {family.name: family.type for family in families(data)}
    assert types["app_requests"] == "counter"
    assert types["app_temperature"] == "gauge"
    assert types["app_duration_seconds"] == "histogram"
    assert types["app_inflight"] == "gauge"
    kinds = {
        m.name: type(m.data)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert kinds["app.requests"] is Sum
    assert kinds["app.temperature"] is Gauge
    assert kinds["app.duration"] is Histogram


def test_an_archive_of_dead_workers_keeps_their_sums_only() -> None:
    """Folding dead workers into one archive source changes no sum and keeps no gauge."""
    dead = [Part(_worker(3, 4), False), Part(_worker(4, 8, routes=["/b"]), False)]
    folded = merge(dead, categories=frozenset({SUMMED}))
    schema, values = to_schema(folded)
    header = Header("archive", 0, 0.0, "host", time.time(), True, folded.start_ns)
    archive = Source(header, template_of(schema), values)
    assert {b.name for b in archive.template.blocks} == {"app.requests", "app.duration"}
    live = Part(_worker(1, 1), True)
    before = _merged([live, *dead])
    after = _merged([live, Part(archive, False)])
    for route in ("/a", "/b"):
        assert _value(after, "app.requests", route=route) == _value(
            before, "app.requests", route=route
        )

    def buckets(data: MetricsData) -> list[tuple[object, ...]]:
        return [
            (p.attributes, p.start_time_unix_nano, p.count, p.sum, p.bucket_counts, p.min, p.max)
            for p in _points(data, "app.duration")
            if isinstance(p, HistogramDataPoint)
        ]

    assert buckets(after) == buckets(before)
