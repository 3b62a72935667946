"""The collection's Prometheus exposition matches the OTel exporter's, family for family."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from paca_otel.pipeline._collection import Collection
from paca_otel.pipeline._prometheus import CollectionCollector, exposition_name, unit_suffix


def _record(provider: MeterProvider) -> None:
    meter = provider.get_meter("shop", "1.2", schema_url="https://opentelemetry.io/schemas/1.26.0")
    counter = meter.create_counter("orders.placed", unit="{order}", description="Orders")
    counter.add(3, {"region": "eu", "tier": 2})
    counter.add(1, {"region": "us"})
    meter.create_up_down_counter("queue.depth").add(-4, {"queue": "mail"})
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    for value in (0.004, 0.02, 0.3, 7.0):
        histogram.record(value, {"http.route": "/users/{id}", "http.request.method": "GET"})
    meter.create_gauge("temperature", unit="Cel").set(21.5, {"room": "a b"})

    def threads(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(12, {})

    meter.create_observable_gauge("process.thread.count", [threads], unit="{thread}")
    meter.create_counter("bytes.sent", unit="By/s").add(10)


def _lines(text: bytes) -> set[str]:
    return {line for line in text.decode().splitlines() if line and not line.startswith("#")}


def test_exposition_matches_the_otel_exporter() -> None:
    """Every sample the OTel exporter exposes is exposed the same way (``*_count`` renamed)."""
    theirs = CollectorRegistry(auto_describe=False)
    reference = PrometheusMetricReader(registry=theirs)
    collection = Collection()
    resource = Resource.create({"service.name": "shop", "service.instance.id": "i-1"})
    provider = MeterProvider(resource=resource, metric_readers=[reference, collection])
    try:
        _record(provider)
        ours = CollectorRegistry(auto_describe=False)
        ours.register(CollectionCollector(collection.collect_now))
        expected = set()
        for line in _lines(generate_latest(theirs)):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name == "process_thread_count":
                expected.add(line.replace(name, exposition_name(name, "gauge"), 1))
            else:
                expected.add(line)
        assert _lines(generate_latest(ours)) == expected
    finally:
        provider.shutdown()


def test_unit_suffixes_follow_the_otel_mapping() -> None:
    """UCUM units map to Prometheus suffixes; annotations vanish; ratios read ``per``."""
    assert unit_suffix("s") == "seconds"
    assert unit_suffix("By/s") == "bytes_per_second"
    assert unit_suffix("{request}") == ""
    assert unit_suffix("1") == ""
    assert unit_suffix("m/s") == "meters_per_second"
