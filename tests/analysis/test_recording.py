"""A collection's histograms become count, sum and quantiles of the interval since the last."""

from __future__ import annotations

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from paca_otel.analysis._recording import CollectionRecorder


def _by_name(samples: list[tuple[str, dict[str, str], float, float]]) -> dict[str, float]:
    return {name: value for name, _, _, value in samples}


def test_histogram_quantiles_cover_only_the_interval() -> None:
    """The second collection's p50 reflects only what was recorded since the first."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(
        "rt", explicit_bucket_boundaries_advisory=[1.0, 10.0, 100.0]
    )
    recorder = CollectionRecorder()
    for _ in range(100):
        histogram.record(0.5)
    first = _by_name(recorder.samples(reader.get_metrics_data(), 1.0))
    for _ in range(10):
        histogram.record(50.0)
    second = _by_name(recorder.samples(reader.get_metrics_data(), 2.0))
    provider.shutdown()
    assert first["rt.count"] == 100.0
    assert first["rt.p50"] <= 1.0
    assert second["rt.count"] == 110.0
    assert 10.0 < second["rt.p50"] <= 100.0  # a lifetime p50 would still say <= 1


def test_timestamps_default_to_each_points_own() -> None:
    """Without a collection timestamp, each sample carries its data point's time."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_up_down_counter("q").add(-2, {"k": 1})
    ((name, labels, at, value),) = CollectionRecorder().samples(reader.get_metrics_data())
    provider.shutdown()
    assert (name, labels, value) == ("q", {"k": "1"}, -2)
    assert at > 1e9


def test_system_aliases_are_recorded_beside_their_sources() -> None:
    """cpu_usage and memory_usage come with the collection, as rules and reports name them."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    meter.create_observable_gauge(
        "system.cpu.utilization",
        callbacks=[
            lambda _o: [
                Observation(0.75, {"cpu.mode": "idle"}),
                Observation(0.25, {"cpu.mode": "user"}),
            ]
        ],
    )
    meter.create_observable_gauge(
        "system.memory.utilization",
        callbacks=[lambda _o: [Observation(0.5, {"system.memory.state": "used"})]],
    )
    samples = CollectionRecorder().samples(reader.get_metrics_data(), 10.0)
    provider.shutdown()
    assert ("cpu_usage", {}, 10.0, 25.0) in samples
    assert ("memory_usage", {}, 10.0, 50.0) in samples
