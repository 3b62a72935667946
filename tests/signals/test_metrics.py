"""Tests for paca_otel.signals._metrics: MetricsCollector on a private SDK MeterProvider."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Iterator
from decimal import Decimal
from enum import IntEnum
from fractions import Fraction
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from paca_otel import _internal
from paca_otel.errors import InstrumentKindConflictError, InvalidMetricNameError, MetricError
from paca_otel.signals import _timer as timer_mod
from paca_otel.signals._labels import cache_key
from paca_otel.signals._metrics import SECONDS_BUCKETS, MetricKind, MetricsCollector

LABELS: dict[str, str | int] = {"route": "/items", "status": 200}


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def collector(provider: MeterProvider) -> MetricsCollector:
    return MetricsCollector(meter_provider=provider)


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    _internal.reset_warnings()
    yield
    _internal.reset_warnings()


@pytest.fixture
def drops(monkeypatch: pytest.MonkeyPatch, provider: MeterProvider) -> None:
    """Point the paca_otel.dropped self-metric at the private provider."""
    counter = provider.get_meter("paca_otel").create_counter("paca_otel.dropped")
    monkeypatch.setattr(_internal.drops, "_counter", counter)


def _metrics(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    found: dict[str, Any] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def _points(reader: InMemoryMetricReader, name: str) -> dict[frozenset[Any], Any]:
    metric = _metrics(reader).get(name)
    if metric is None:
        return {}
    return {frozenset((p.attributes or {}).items()): p for p in metric.data.data_points}


def _dropped(reader: InMemoryMetricReader) -> dict[str, int]:
    points = _points(reader, "paca_otel.dropped")
    return {dict(key)["reason"]: point.value for key, point in points.items()}


KEY = frozenset(LABELS.items())


def test_increment_sums_into_a_counter(collector: MetricsCollector, reader: Any) -> None:
    """increment() adds to one monotonic counter per label set, default step 1."""
    collector.increment("requests", labels=LABELS)
    collector.increment("requests", 2, LABELS)
    collector.increment("requests")
    points = _points(reader, "requests")
    assert points[KEY].value == 3
    assert points[frozenset()].value == 1
    assert _metrics(reader)["requests"].data.is_monotonic


def test_add_goes_up_and_down(collector: MetricsCollector, reader: Any) -> None:
    """add() feeds an up-down counter that accepts negative steps."""
    collector.add("queue.depth", 5)
    collector.add("queue.depth", -2)
    assert _points(reader, "queue.depth")[frozenset()].value == 3
    assert not _metrics(reader)["queue.depth"].data.is_monotonic


def test_observe_records_a_histogram(collector: MetricsCollector, reader: Any) -> None:
    """observe() records each value into a histogram (count, sum, min, max)."""
    for value in (1.0, 2.0, 6.0):
        collector.observe("payload.size", value, LABELS, unit="By")
    point = _points(reader, "payload.size")[KEY]
    assert (point.count, point.sum, point.min, point.max) == (3, 9.0, 1.0, 6.0)


def test_set_gauge_keeps_last_value(collector: MetricsCollector, reader: Any) -> None:
    """set_gauge() is a synchronous gauge: last value per label set wins, negatives allowed."""
    collector.set_gauge("temperature", 20.5, {"room": "a"})
    collector.set_gauge("temperature", -3, {"room": "a"})
    collector.set_gauge("temperature", 7, {"room": "b"})
    points = _points(reader, "temperature")
    assert points[frozenset({("room", "a")})].value == -3
    assert points[frozenset({("room", "b")})].value == 7


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (MetricKind.COUNTER, 5),
        ("counter", 5),
        (MetricKind.UP_DOWN_COUNTER, 5),
        ("up_down_counter", 5),
        (MetricKind.GAUGE, 3),
        ("gauge", 3),
    ],
)
def test_record_dispatches_on_kind(
    collector: MetricsCollector, reader: Any, kind: MetricKind | str, expected: float
) -> None:
    """record() routes to the instrument of the kind given as enum or string."""
    collector.record("m", 2, LABELS, kind)
    collector.record("m", 3, LABELS, kind)
    assert _points(reader, "m")[KEY].value == expected


@pytest.mark.parametrize("kind", [MetricKind.HISTOGRAM, "histogram"])
def test_record_histogram(collector: MetricsCollector, reader: Any, kind: Any) -> None:
    """record(kind=histogram) observes the value."""
    collector.record("latency", 0.25, LABELS, kind)
    assert _points(reader, "latency")[KEY].count == 1


def test_record_defaults_to_gauge(collector: MetricsCollector, reader: Any) -> None:
    """record() without kind behaves like the seed: a gauge holding the last value."""
    collector.record("cpu", 10)
    collector.record("cpu", 12)
    assert _points(reader, "cpu")[frozenset()].value == 12


async def test_record_metric_is_awaitable(collector: MetricsCollector, reader: Any) -> None:
    """The seed's async record_metric() records like record()."""
    await collector.record_metric("jobs", 1, {"queue": "q"}, MetricKind.COUNTER)
    await collector.record_metric("jobs", 1, {"queue": "q"}, "counter")
    assert _points(reader, "jobs")[frozenset({("queue", "q")})].value == 2


def test_unit_and_description_apply_on_first_use(collector: MetricsCollector, reader: Any) -> None:
    """unit/description given at first use end up on the exported metric."""
    collector.increment("bytes.sent", 10, unit="By", description="Bytes sent.")
    collector.increment("bytes.sent", 10, unit="ignored", description="ignored")
    metric = _metrics(reader)["bytes.sent"]
    assert (metric.unit, metric.description) == ("By", "Bytes sent.")


def test_instruments_are_created_once(
    provider: MeterProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each (name, kind) creates one instrument, reused by every later call."""
    meter = provider.get_meter("test")
    calls: list[str] = []
    real = meter.create_counter

    def counting_create(name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(meter, "create_counter", counting_create)
    collector = MetricsCollector(meter)
    for _ in range(5):
        collector.increment("hits")
        collector.record("hits", 1, kind="counter")
    first = collector.instrument("hits", MetricKind.COUNTER)
    assert collector.instrument("hits", "counter") is first
    assert calls == ["hits"]


def test_first_sighting_race_creates_one_instrument(collector: MetricsCollector) -> None:
    """Threads racing on a new name all get the same instrument object."""
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def worker() -> None:
        barrier.wait()
        seen.append(collector.instrument("race", MetricKind.HISTOGRAM))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert len(seen) == 8
    assert all(instrument is seen[0] for instrument in seen)


@pytest.mark.parametrize(
    "name", ["", "1abc", "_x", "has space", "é", "a" * 256, "semi;colon", "a:b"]
)
def test_invalid_names_raise(collector: MetricsCollector, name: str) -> None:
    """Names outside OTel's instrument-name rule raise, naming the metric and the rule."""
    with pytest.raises(InvalidMetricNameError) as info:
        collector.increment(name)
    assert repr(name) in str(info.value)
    assert "254" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_invalid_name_raises_for_every_entry_point(collector: MetricsCollector) -> None:
    """Every recording method and timer() validate the name at the call."""
    for call in (
        lambda: collector.record("9", 1),
        lambda: collector.observe("9", 1),
        lambda: collector.set_gauge("9", 1),
        lambda: collector.add("9", 1),
        lambda: collector.timer("9"),
        lambda: collector.instrument("9"),
    ):
        with pytest.raises(InvalidMetricNameError):
            call()


@pytest.mark.parametrize("name", ["a", "a" * 255, "http.server.request_duration", "A-b/c.d_9"])
def test_valid_names_accepted(collector: MetricsCollector, reader: Any, name: str) -> None:
    """Names at the edges of the rule are accepted (the SDK exports them lower-cased)."""
    collector.increment(name)
    assert name.lower() in _metrics(reader)


def test_kind_conflict_raises(collector: MetricsCollector) -> None:
    """One name used with a second kind raises, naming the metric and both kinds."""
    collector.increment("orders")
    with pytest.raises(InstrumentKindConflictError) as info:
        collector.observe("orders", 1.0)
    message = str(info.value)
    assert "'orders'" in message
    assert "counter" in message
    assert "histogram" in message
    with pytest.raises(InstrumentKindConflictError):
        collector.record("orders", 1)  # default kind gauge
    with pytest.raises(InstrumentKindConflictError):
        collector.timer("orders")


def test_kind_conflict_ignores_case(collector: MetricsCollector) -> None:
    """OTel names are case-insensitive, so 'Orders' conflicts with 'orders'."""
    collector.set_gauge("orders", 1)
    with pytest.raises(InstrumentKindConflictError):
        collector.increment("Orders")


def test_unknown_kind_raises(collector: MetricsCollector) -> None:
    """An unknown kind raises MetricError listing the allowed kinds."""
    with pytest.raises(MetricError) as info:
        collector.record("x", 1, kind="summary")
    assert "'summary'" in str(info.value)
    assert "'up_down_counter'" in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("method", ["increment", "add", "observe", "set_gauge", "record"])
@pytest.mark.usefixtures("drops")
def test_non_finite_values_dropped_counted_warned_once(
    collector: MetricsCollector,
    reader: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    value: float,
) -> None:
    """NaN/inf never reach the SDK: dropped, counted, warned once per metric name."""
    record = getattr(collector, method)
    with caplog.at_level(logging.WARNING, logger="paca_otel"):
        record("m", 1, LABELS)
        record("m", value, LABELS)
        record("m", value, LABELS)
        record("m", value)
    assert _dropped(reader) == {"non_finite_value": 3}
    warnings = [r for r in caplog.records if r.name.startswith("paca_otel")]
    assert len(warnings) == 1
    assert "'m'" in warnings[0].getMessage()
    assert "not finite" in warnings[0].getMessage()


@pytest.mark.usefixtures("drops")
def test_warning_is_once_per_metric_name(
    collector: MetricsCollector, reader: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A second metric with bad values gets its own single warning."""
    with caplog.at_level(logging.WARNING, logger="paca_otel"):
        for name in ("a", "b", "a", "b"):
            collector.set_gauge(name, math.nan)
    assert len([r for r in caplog.records if r.name.startswith("paca_otel")]) == 2
    assert _dropped(reader) == {"non_finite_value": 4}


@pytest.mark.usefixtures("drops")
def test_negative_counter_and_histogram_values_dropped(
    collector: MetricsCollector, reader: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Negative counter increments and histogram values are dropped, counted, warned once."""
    with caplog.at_level(logging.WARNING, logger="paca_otel"):
        collector.increment("c", 2)
        collector.increment("c", -1)
        collector.record("c", -1, kind=MetricKind.COUNTER)
        collector.observe("h", -0.5)
    assert _points(reader, "c")[frozenset()].value == 2
    assert _points(reader, "h") == {}
    assert _dropped(reader) == {"negative_value": 3}
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("paca_otel")]
    assert len(messages) == 2
    assert all("negative" in m for m in messages)


@pytest.mark.usefixtures("drops")
def test_non_numbers_dropped_not_raised(collector: MetricsCollector, reader: Any) -> None:
    """A value that is not a number is dropped and counted instead of raising."""
    collector.increment("c", "3")  # type: ignore[arg-type]  # the wrong type is the test
    collector.set_gauge("g", None)  # type: ignore[arg-type]  # the wrong type is the test
    assert _dropped(reader) == {"invalid_value_type": 2}


def _record_metric(collector: MetricsCollector, name: str, value: Any, labels: Any) -> None:
    asyncio.run(collector.record_metric(name, value, labels, kind="counter"))


#: Every recording entry point, called as (collector, name, value, labels).
ENTRY_POINTS: dict[str, Any] = {
    "increment": lambda c, n, v, lb: c.increment(n, v, lb),
    "add": lambda c, n, v, lb: c.add(n, v, lb),
    "observe": lambda c, n, v, lb: c.observe(n, v, lb),
    "set_gauge": lambda c, n, v, lb: c.set_gauge(n, v, lb),
    "record": lambda c, n, v, lb: c.record(n, v, lb),
    "record(counter)": lambda c, n, v, lb: c.record(n, v, lb, "counter"),
    "record(histogram)": lambda c, n, v, lb: c.record(n, v, lb, MetricKind.HISTOGRAM),
    "record(up_down_counter)": lambda c, n, v, lb: c.record(n, v, lb, "up_down_counter"),
    "record_metric": _record_metric,
}


@pytest.mark.parametrize(
    "case",
    [
        (True, "invalid_value_type"),
        (False, "invalid_value_type"),
        (10**400, "out_of_range_value"),
        (2**63, "out_of_range_value"),
        (-(2**63) - 1, "out_of_range_value"),
        (Fraction(10**400), "out_of_range_value"),
        (Decimal("1e400"), "non_finite_value"),
        (Decimal("NaN"), "non_finite_value"),
    ],
)
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.usefixtures("drops")
def test_booleans_and_out_of_range_numbers_dropped_on_every_entry_point(
    collector: MetricsCollector,
    reader: Any,
    caplog: pytest.LogCaptureFixture,
    entry: str,
    case: tuple[object, str],
) -> None:
    """Booleans and numbers OTLP cannot carry never raise nor reach the SDK; counted, warned."""
    value, reason = case
    record = ENTRY_POINTS[entry]
    with caplog.at_level(logging.WARNING, logger="paca_otel"):
        record(collector, "m", value, LABELS)
        record(collector, "m", value, None)
    metric = _metrics(reader).get("m")
    assert metric is None or not metric.data.data_points
    assert _dropped(reader) == {reason: 2}
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("paca_otel")]
    assert len(warnings) == 1
    assert "'m'" in warnings[0]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_int64_bounds_and_numeric_types_are_recorded_as_plain_numbers(
    collector: MetricsCollector, reader: Any, entry: str
) -> None:
    """The largest int64, IntEnum, Fraction and Decimal are recorded as a plain int or float."""

    class Size(IntEnum):
        BIG = 2**63 - 1

    record = ENTRY_POINTS[entry]
    record(collector, "m", Size.BIG, {"v": "int"})
    record(collector, "m", Fraction(1, 4), {"v": "fraction"})
    record(collector, "m", Decimal("0.5"), {"v": "decimal"})
    points = {dict(key)["v"]: point for key, point in _points(reader, "m").items()}
    assert set(points) == {"int", "fraction", "decimal"}
    for point in points.values():
        value = getattr(point, "value", None)
        if value is None:  # a histogram point
            value = point.sum
        assert type(value) in (int, float)


def test_gauge_takes_the_lowest_int64(collector: MetricsCollector, reader: Any) -> None:
    """-2**63 is a valid gauge value: only numbers beyond int64 are dropped."""
    collector.set_gauge("g", -(2**63))
    assert _points(reader, "g")[frozenset()].value == -(2**63)


def test_batch_with_offered_bad_values_still_encodes_as_otlp(
    collector: MetricsCollector, reader: InMemoryMetricReader
) -> None:
    """After True, 10**400, 2**70 and a bad label were offered, the OTLP encoder takes the batch."""
    collector.set_gauge("g", True)
    collector.set_gauge("g", 10**400)
    collector.increment("c", 2**70)
    collector.set_gauge("g", 1.5, {"user": "\udcff", "id": 2**70, "none": None, "tags": ["a"]})
    data = reader.get_metrics_data()
    assert data is not None
    request = encode_metrics(data)
    assert request.ByteSize() > 0
    (point,) = _points(reader, "g").values()
    assert point.value == 1.5
    assert dict(point.attributes) == {"user": "\ufffd", "id": str(2**70), "tags": ("a",)}


@pytest.mark.usefixtures("drops")
def test_labels_are_made_safe_on_every_entry_point(
    collector: MetricsCollector, reader: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A lone surrogate becomes U+FFFD and None drops the label, whichever method records it."""
    labels = {"user": "a\udcffb", "team": None}
    with caplog.at_level(logging.WARNING, logger="paca_otel"):
        for index, record in enumerate(ENTRY_POINTS.values()):
            record(collector, f"m{index}", 1, labels)
        with collector.timer("t", labels):
            pass
    for index in range(len(ENTRY_POINTS)):
        (key,) = _points(reader, f"m{index}")
        assert dict(key) == {"user": "a\ufffdb"}
    (key,) = _points(reader, "t")
    assert dict(key) == {"user": "a\ufffdb"}
    dropped = _dropped(reader)
    # Cleaned once per label set: the cache serves every later call.
    assert dropped == {"label_value_unencodable": 1, "invalid_label": 1}
    assert len([r for r in caplog.records if r.name.startswith("paca_otel")]) == 2


@pytest.mark.usefixtures("drops")
def test_long_label_values_are_truncated_and_counted_per_use(
    collector: MetricsCollector, reader: Any
) -> None:
    """A 1 MB value is stored cut to the limit, and every truncation is counted."""
    huge = "x" * 1_000_000
    for _ in range(3):
        collector.increment("c", 1, {"payload": huge})
    (key,) = _points(reader, "c")
    assert dict(key)["payload"] == "x" * 2048
    assert _dropped(reader) == {"label_value_truncated": 3}
    assert all(len(str(k)) < 100 for k in collector._label_sets)  # nothing huge is pinned


def test_seen_label_sets_are_cached_under_the_hot_path_key(collector: MetricsCollector) -> None:
    """The cleaner caches under the key the hot path builds, so repeats skip cleaning."""
    collector.increment("c", 1, LABELS)
    collector.increment("c", 1, dict(LABELS))
    assert list(collector._label_sets) == [cache_key(LABELS)]


def test_label_limit_is_a_constructor_argument(provider: MeterProvider, reader: Any) -> None:
    """``label_value_max_length`` on the collector overrides the process setting."""
    collector = MetricsCollector(meter_provider=provider, label_value_max_length=3)
    collector.set_gauge("g", 1, {"route": "/abcdef"})
    (key,) = _points(reader, "g")
    assert dict(key) == {"route": "/ab"}  # keys are never cut


def test_label_limit_follows_configure() -> None:
    """A collector on the global provider takes ``label_value_max_length`` from configure()."""
    from paca_otel._setup import configure

    collector = MetricsCollector()
    memory = InMemoryMetricReader()
    configure(metrics_exporter="none", system_metrics=False, metric_readers=[memory],
              label_value_max_length=4)  # fmt: skip
    collector.set_gauge("paca_test.limit", 1, {"route": "/abcdef"})
    (key,) = _points(memory, "paca_test.limit")
    assert dict(key) == {"route": "/abc"}


@pytest.mark.usefixtures("drops")
def test_labels_that_are_not_a_mapping_drop_the_measurement(
    collector: MetricsCollector, reader: Any
) -> None:
    """A list of pairs or a string as labels is dropped and counted, never raised."""
    collector.increment("c", 1, [("a", "b")])  # type: ignore[arg-type]  # the wrong type is the test
    collector.set_gauge("g", 1, "a=b")  # type: ignore[arg-type]  # the wrong type is the test
    with collector.timer("t", 5):  # type: ignore[arg-type]  # the wrong type is the test
        pass
    assert _points(reader, "c") == {}
    assert _points(reader, "g") == {}
    assert _points(reader, "t") == {}
    assert _dropped(reader) == {"invalid_labels": 3}


def test_unhashable_label_values_are_recorded(collector: MetricsCollector, reader: Any) -> None:
    """A list label value becomes a tuple (an OTel array) instead of failing in the SDK."""
    collector.increment("c", 1, {"tags": ["a", "b"]})
    collector.increment("c", 1, {"tags": ["a", "b"]})
    ((key, point),) = _points(reader, "c").items()
    assert dict(key) == {"tags": ("a", "b")}
    assert point.value == 2


def test_description_is_made_encodable(collector: MetricsCollector, reader: Any) -> None:
    """A lone surrogate in a description cannot break the exposition either."""
    collector.set_gauge("g", 1, description="bad \udcff help")
    assert _metrics(reader)["g"].description == "bad \ufffd help"


@pytest.mark.parametrize("unit", ["\udcff", "°C", "x" * 64])
def test_unit_the_sdk_refuses_is_a_clear_error(collector: MetricsCollector, unit: str) -> None:
    """A unit the SDK would refuse with a bare Exception raises MetricError naming it."""
    with pytest.raises(MetricError, match="unit"):
        collector.set_gauge("g", 1, unit=unit)


async def test_surrogate_label_keeps_metrics_endpoints_serving() -> None:
    """With a lone surrogate in a label, /metrics and /monitoring/metrics answer 200."""
    import httpx

    from paca_otel._demo import create_app
    from paca_otel.security import generate_token

    token = generate_token()  # the monitoring API needs one since issue 8
    app = create_app(traffic=False, metrics_exporter="prometheus", admin_token=token)
    async with app.router.lifespan_context(app):
        collector = MetricsCollector()
        collector.set_gauge("paca_test.bad", 1.0, {"user": "\udcff", "blob": "y" * 1_000_000})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            scrape = await http.get("/metrics")
            snapshot = await http.get(
                "/monitoring/metrics", headers={"Authorization": f"Bearer {token}"}
            )
    assert scrape.status_code == 200
    assert snapshot.status_code == 200
    assert 'user="\ufffd"' in scrape.text
    points = [p for p in snapshot.json()["metrics"] if p["name"] == "paca_test.bad"]
    assert points[0]["labels"]["user"] == "\ufffd"
    assert len(points[0]["labels"]["blob"]) == 2048
    assert len(scrape.content) < 100_000


def test_default_collector_uses_global_meter() -> None:
    """Without arguments the collector works on the global (proxy) meter and never raises."""
    collector = MetricsCollector()
    collector.increment("paca_test.global")
    collector.observe("paca_test.global_h", 1.0)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """perf_counter() of the timer module returns the next queued value."""
    ticks: list[float] = []
    monkeypatch.setattr(timer_mod, "perf_counter", lambda: ticks.pop(0))
    return ticks


def test_timer_context_manager(
    collector: MetricsCollector, reader: Any, fake_clock: list[float]
) -> None:
    """timer() as a context manager records the block's seconds into a histogram 's'."""
    fake_clock.extend([10.0, 10.25])
    with collector.timer("job.duration", LABELS) as timer:
        pass
    assert timer.elapsed == 0.25
    metric = _metrics(reader)["job.duration"]
    assert metric.unit == "s"
    point = metric.data.data_points[0]
    assert (point.count, point.sum) == (1, 0.25)
    assert tuple(point.explicit_bounds) == SECONDS_BUCKETS


def test_timer_records_when_block_raises(
    collector: MetricsCollector, reader: Any, fake_clock: list[float]
) -> None:
    """A failing block is still timed and the exception propagates."""
    fake_clock.extend([1.0, 3.0])
    with pytest.raises(RuntimeError), collector.timer("job.duration"):
        raise RuntimeError
    assert _points(reader, "job.duration")[frozenset()].sum == 2.0


def test_timer_decorates_sync_function(
    collector: MetricsCollector, reader: Any, fake_clock: list[float]
) -> None:
    """A decorated sync function is timed on every call and keeps its result and name."""

    @collector.timer("work", LABELS)
    def work(x: int) -> int:
        return x * 2

    fake_clock.extend([0.0, 0.5, 1.0, 1.25])
    assert work(2) == 4
    assert work(3) == 6
    assert work.__name__ == "work"
    point = _points(reader, "work")[KEY]
    assert (point.count, point.sum) == (2, 0.75)


async def test_timer_decorates_async_function(
    collector: MetricsCollector, reader: Any, fake_clock: list[float]
) -> None:
    """A decorated coroutine function is timed across its awaits, not just its creation."""

    @collector.timer("awork")
    async def awork() -> str:
        await asyncio.sleep(0)
        return "done"

    fake_clock.extend([5.0, 6.5])
    assert asyncio.iscoroutinefunction(awork)
    assert await awork() == "done"
    point = _points(reader, "awork")[frozenset()]
    assert (point.count, point.sum) == (1, 1.5)


def test_timer_measures_real_time(collector: MetricsCollector, reader: Any) -> None:
    """With the real clock the recorded duration is positive and small."""
    with collector.timer("real"):
        sum(range(1000))
    point = _points(reader, "real")[frozenset()]
    assert 0 < point.sum < 5
