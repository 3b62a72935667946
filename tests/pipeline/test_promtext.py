"""The hand-written exposition equals prometheus_client's rendering of the same families."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric as Family
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from paca_otel.pipeline._collection import Collection
from paca_otel.pipeline._prometheus import CollectionCollector, exposition_name
from paca_otel.pipeline._promtext import exposition, format_value

PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
ACCEPTS = {
    "curl": "",
    "prometheus 2": PROMETHEUS_2,
    "prometheus 3": PROMETHEUS_3,
    "text 1.0.0": "text/plain;version=1.0.0;escaping=underscores",
    "dots (prometheus_client writes)": "text/plain;version=1.0.0;escaping=dots",
    "openmetrics 0.0.1 (prometheus_client writes)": "application/openmetrics-text",
}
T0, T1 = 1_000_000_000, 2_000_000_000
CUMULATIVE = AggregationTemporality.CUMULATIVE


def _number(attributes: dict[str, Any], value: float) -> NumberDataPoint:
    return NumberDataPoint(attributes, T0, T1, value)


def _histogram(
    attributes: dict[str, Any], bounds: Sequence[float], counts: Sequence[int], total: float
) -> HistogramDataPoint:
    return HistogramDataPoint(
        attributes, T0, T1, sum(counts), total, list(counts), list(bounds), 0.0, 9.0
    )


def _rich() -> MetricsData:
    """Every kind, awkward labels and values, two scopes, a ``*.count`` gauge, target_info."""
    awkward = {
        "quote": 'say "hi"',
        "back.slash": "C:\\temp\\",
        "new-line": "one\ntwo",
        "unicode": "caf\u00e9 \u65e5\u672c \U0001f600",
        "flag": True,
        "list": [1, 2],
        "9lives": 9,
    }
    counters = Sum(
        [
            _number({"route": "/a", "method": "GET"}, 3),
            _number(awkward, 1.5),
            _number({"route": "/b"}, 1e21),  # no method: the label reads ""
        ],
        CUMULATIVE,
        is_monotonic=True,
    )
    updown = Sum([_number({"queue": "mail"}, -4)], CUMULATIVE, is_monotonic=False)
    delta = Sum([_number({"k": "v"}, 2)], AggregationTemporality.DELTA, is_monotonic=False)
    gauges = Gauge(
        [
            _number({"room": "a b"}, math.nan),
            _number({"room": "hot"}, math.inf),
            _number({"room": "cold"}, -math.inf),
            _number({"room": "zero"}, -0.0),
            _number({"room": "big"}, 123456789.0),
        ]
    )
    histograms = Histogram(
        [
            _histogram({"route": "/a"}, [0.005, 0.1, 1.0], [1, 2, 3, 4], 7.5),
            _histogram({"route": "/b"}, [0.005, 0.1, 1.0], [0, 0, 0, 1], math.inf),
        ],
        CUMULATIVE,
    )
    negative = Histogram([_histogram({}, [-1.0, 0.0], [1, 1, 1], -0.5)], CUMULATIVE)
    app = [
        Metric("orders.placed", 'Orders "placed"\\ per\nline', "{order}", counters),
        Metric("queue.depth", "", "", updown),
        Metric("batch.delta", "", "By", delta),
        Metric("temperature", "Temp \u00b0C", "Cel", gauges),
        Metric("http.server.request.duration", "", "s", histograms),
        Metric("offsets", "", "", negative),
        Metric("process.thread.count", "", "{thread}", Gauge([_number({}, 12)])),
    ]
    other = [Metric("orders.placed", 'Orders "placed"\\ per\nline', "{order}", Sum(
        [_number({"region": "eu", "tier": 2}, 7)], CUMULATIVE, is_monotonic=True))]  # fmt: skip
    scope_a = InstrumentationScope("shop", "1.2", "https://x/1.26.0", {"team": 'a"b'})
    scope_b = InstrumentationScope("billing")
    resource = Resource({"service.name": "shop", "deployment.environment": 'pr"od\n'})
    return MetricsData(
        [
            ResourceMetrics(
                resource,
                [ScopeMetrics(scope_a, app, "https://x/1.26.0"), ScopeMetrics(scope_b, other, "")],
                "",
            )
        ]
    )


class _Static:
    """A collector of fixed families (a user's collector next to ours)."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Family]:
        return self.families


def _registry(data: MetricsData, *others: Family) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if others:
        registry.register(_Static(others[:1]))
    registry.register(CollectionCollector(lambda: data))
    if others:
        registry.register(_Static(others[1:]))
    return registry


def _parsed(body: bytes, content_type: str) -> list[Any]:
    """Families as parsed by prometheus_client (values as ``repr``: NaN equals NaN)."""
    parse = parse_openmetrics if content_type.startswith("application/openmetrics") else parse_text
    return [
        (f.name, f.type, f.documentation, f.unit,
         [(s.name, s.labels, repr(s.value), s.timestamp, s.exemplar) for s in f.samples])
        for f in parse(body.decode())
    ]  # fmt: skip


def _assert_same(registry: CollectorRegistry, accept: str) -> bytes:
    """The exposition equals the chosen encoder's, byte for byte and parsed; returns it."""
    encoder, content_type = choose_encoder(accept)
    expected = encoder(registry)
    body, served_type = exposition(registry, accept)
    assert served_type == content_type
    assert body.decode() == expected.decode()
    if "escaping=dots" not in content_type:  # its parser rejects the __names dots make
        assert _parsed(body, content_type) == _parsed(expected, content_type)
    return body


@pytest.mark.parametrize("accept", list(ACCEPTS.values()), ids=list(ACCEPTS))
def test_rich_data_is_written_as_prometheus_client_writes_it(accept: str) -> None:
    """Every kind, escaping, NaN/Inf, scopes and target_info: the same bytes and samples."""
    _assert_same(_registry(_rich()), accept)


def test_label_values_are_escaped_and_values_go_formatted() -> None:
    """Quotes, backslashes and newlines are escaped; UTF-8 kept; NaN and infinities spelt out."""
    text = exposition(_registry(_rich()), "")[0].decode()
    assert 'quote="say \\"hi\\""' in text
    assert 'back_slash="C:\\\\temp\\\\"' in text
    assert 'new_line="one\\ntwo"' in text
    assert "caf\u00e9 \u65e5\u672c \U0001f600" in text
    assert 'temperature_celsius{otel_scope_name="shop",' in text  # labels are sorted
    assert '"a b"} NaN\n' in text
    assert '"hot"} +Inf\n' in text
    assert '"cold"} -Inf\n' in text
    assert '"big"} 1.23456789e+08\n' in text
    assert "process_threads{" in text


def test_remembered_values_are_written_as_first_formatted() -> None:
    """Zeros keep their sign, ints read as floats, NaN and big values stay right on rescrapes."""
    values = [0.0, -0.0, 7, 7.0, True, 10**21, 2**53 + 1, math.nan, 1234567.0, -1234567.0]
    points = [_number({"i": str(i)}, v) for i, v in enumerate(values)]
    data = MetricsData([ResourceMetrics(Resource({}), [ScopeMetrics(
        InstrumentationScope("t"), [Metric("g", "", "", Gauge(points))], "")], "")])  # fmt: skip
    registry = _registry(data)
    for accept in ("", PROMETHEUS_2, ""):
        _assert_same(registry, accept)
    assert format_value(-0.0) == "-0.0"
    assert format_value(0.0) == "0.0"


def test_the_samples_match_the_otel_exporter() -> None:
    """The written text has the OTel Prometheus exporter's samples (``*_count`` renamed)."""
    theirs = CollectorRegistry(auto_describe=False)
    collection = Collection()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "shop"}),
        metric_readers=[PrometheusMetricReader(registry=theirs), collection],
    )
    try:
        meter = provider.get_meter("shop", "1.2")
        counter = meter.create_counter("orders.placed", unit="{order}", description='a "b"\\')
        counter.add(3, {"region": "eu", "note": 'x"y\\z\nw'})
        counter.add(1, {"region": "\u65e5\u672c"})
        meter.create_up_down_counter("queue.depth").add(-4, {"queue": "mail"})
        histogram = meter.create_histogram("request.duration", unit="s")
        for value in (0.004, 0.02, 0.3, 7.0):
            histogram.record(value, {"route": "/users/{id}"})
        meter.create_gauge("temperature", unit="Cel").set(math.nan, {"room": "a"})
        meter.create_gauge("open.count").set(2)
        ours = CollectorRegistry(auto_describe=False)
        ours.register(CollectionCollector(collection.collect_now))
        rename = {"open_count": exposition_name("open_count", "gauge")}
        expected = {
            (rename.get(s.name, s.name), tuple(sorted(s.labels.items())), repr(s.value))
            for family in parse_text(generate_latest(theirs).decode())
            for s in family.samples
        }
        body, _ = exposition(ours, "")
        got = {
            (s.name, tuple(sorted(s.labels.items())), repr(s.value))
            for family in parse_text(body.decode())
            for s in family.samples
        }
        assert got == expected
    finally:
        provider.shutdown()


@pytest.mark.parametrize("accept", ["", PROMETHEUS_2], ids=["text", "openmetrics"])
def test_other_collectors_keep_their_place(accept: str) -> None:
    """A user's families before and after ours are written by prometheus_client, in order."""
    first = CounterMetricFamily("user_first", "Before ours.", value=1)
    last = CounterMetricFamily("user_last", "After ours.", labels=["k"])
    last.add_metric(['v"'], 2)
    body = _assert_same(_registry(_rich(), first, last), accept).decode()
    assert body.index("user_first_total") < body.index("target_info") < body.index("user_last")


@pytest.mark.parametrize("accept", ["", PROMETHEUS_2], ids=["text", "openmetrics"])
def test_an_le_attribute_gives_way_to_the_bucket_bound(accept: str) -> None:
    """An attribute named ``le`` is replaced in bucket lines and kept in _count/_sum lines."""
    point = _histogram({"le": "attr", "z": "1"}, [0.5], [1, 1], 1.0)
    data = MetricsData([ResourceMetrics(Resource({}), [ScopeMetrics(
        InstrumentationScope("t"), [Metric("h", "", "", Histogram([point], CUMULATIVE))], "")],
        "")])  # fmt: skip
    registry = _registry(data)
    encoder, content_type = choose_encoder(accept)
    body, served_type = exposition(registry, accept)
    assert (body, served_type) == (encoder(registry), content_type)
    assert 'h_bucket{le="0.5",otel_scope_name="t"' in body.decode()
    assert 'h_count{le="attr",otel_scope_name="t"' in body.decode()


def test_each_scope_keeps_its_own_labels() -> None:
    """One metric name in two scopes with other attributes: each sample has its own labels."""
    registry = _registry(_rich())
    samples = [
        s
        for family in parse_text(exposition(registry, "")[0].decode())
        if family.name == "orders_placed"
        for s in family.samples
    ]
    billing = [s for s in samples if s.labels["otel_scope_name"] == "billing"]
    assert [(s.labels["region"], s.labels["tier"], s.value) for s in billing] == [("eu", "2", 7)]
    assert all("route" in s.labels for s in samples if s.labels["otel_scope_name"] == "shop")


def test_later_scrapes_follow_new_series_labels_and_values() -> None:
    """Cached series are rebuilt when values, label keys or attribute dicts change."""
    collection = Collection()
    provider = MeterProvider(metric_readers=[collection])
    try:
        counter = provider.get_meter("t").create_counter("hits")
        histogram = provider.get_meter("t").create_histogram("size", unit="By")
        counter.add(1, {"a": "1"})
        histogram.record(5, {"a": "1"})
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CollectionCollector(collection.collect_now))
        first = _assert_same(registry, "").decode()
        counter.add(2, {"a": "1"})
        counter.add(1, {"a": "2", "b": "new"})  # a new label key: every series shows b=""
        histogram.record(5000, {"a": "1"})
        second = _assert_same(registry, PROMETHEUS_2).decode()
        assert 'hits_total{a="1",b="",otel_scope_name="t"' in second
        assert 'hits_total{a="1",otel_scope_name="t"' in first
        assert 'size_bytes_count{a="1",otel_scope_name="t",otel_scope_schema_url="",' in second
        _assert_same(registry, "")
    finally:
        provider.shutdown()
