"""End-to-end tests of Pipeline.collect with real OTel providers and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from paca_otel.alerting._engine import RuleEngine
from paca_otel.delivery._outbox import Outbox
from paca_otel.pipeline._pipeline import Pipeline
from paca_otel.pipeline._store import Matcher, SeriesStore
from paca_otel.rules._rule import Rule


class FakeClock:
    """A settable clock shared by the pipeline and the span processor."""

    def __init__(self, now: float = 5_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Wired:
    pipeline: Pipeline
    clock: FakeClock
    meters: MeterProvider
    tracers: TracerProvider
    idle: list[float]


@pytest.fixture
def wired() -> Iterator[Wired]:
    """A pipeline attached to a MeterProvider (with fake system gauges) and a TracerProvider."""
    clock = FakeClock()
    pipeline = Pipeline(store=SeriesStore(max_series=500), clock=clock, red_window=60.0)
    meters = MeterProvider(metric_readers=[pipeline.reader])
    tracers = TracerProvider()
    tracers.add_span_processor(pipeline.span_processor)
    idle = [0.75]

    def cpu(_: CallbackOptions) -> list[Observation]:
        return [
            Observation(idle[0], {"cpu.mode": "idle"}),
            Observation(1 - idle[0], {"cpu.mode": "user"}),
        ]

    def memory(_: CallbackOptions) -> list[Observation]:
        return [Observation(0.5, {"system.memory.state": "used"})]

    def fs(_: CallbackOptions) -> list[Observation]:
        mount = {"system.filesystem.mountpoint": "/"}
        return [
            Observation(91, {**mount, "system.filesystem.state": "used"}),
            Observation(9, {**mount, "system.filesystem.state": "free"}),
        ]

    meter = meters.get_meter("system")
    meter.create_observable_gauge("system.cpu.utilization", callbacks=[cpu])
    meter.create_observable_gauge("system.memory.utilization", callbacks=[memory])
    meter.create_observable_up_down_counter("system.filesystem.usage", callbacks=[fs])
    yield Wired(pipeline, clock, meters, tracers, idle)
    meters.shutdown()
    tracers.shutdown()


def test_collect_writes_raw_series_and_aliases(wired: Wired) -> None:
    """One collect writes the OTel series plus cpu/memory/disk and RED aliases at `now`."""
    tracer = wired.tracers.get_tracer("app")
    for i in range(20):
        attrs = {"http.route": "/items", "http.request.method": "GET"}
        attrs_status = {"http.response.status_code": 500 if i < 5 else 200}
        span = tracer.start_span("GET /items", kind=SpanKind.SERVER, attributes=attrs, start_time=0)
        span.set_attributes(attrs_status)
        span.end(end_time=(i + 1) * 1_000_000)
    wired.clock.now += 10.0
    wired.pipeline.collect()
    store, now = wired.pipeline.store, wired.clock.now
    assert store.latest("cpu_usage", at=now)[0] == ((), pytest.approx(25.0))  # type: ignore[comparison-overlap]  # approx compares as float
    assert store.latest("memory_usage", at=now)[0] == ((), pytest.approx(50.0))  # type: ignore[comparison-overlap]  # approx compares as float
    assert store.latest("disk_usage", at=now)[0] == ((), pytest.approx(91.0))  # type: ignore[comparison-overlap]  # approx compares as float
    route = [Matcher("route", "=", "/items")]
    assert store.latest("error_rate", route, at=now)[0][1] == pytest.approx(0.25)
    assert store.latest("request_rate", route, at=now)[0][1] == pytest.approx(2.0)
    assert store.latest("latency_p50", route, at=now)[0][1] == pytest.approx(0.0105)
    assert store.latest("error_count", [Matcher("route", "=", "")], at=now) == [((), 5.0)]
    assert "system.cpu.utilization" in store.names()
    assert wired.pipeline.collections == 1
    assert wired.pipeline.last_points > 10


def test_collect_builds_a_time_series_over_cycles(wired: Wired) -> None:
    """Repeated collects at the evaluation interval build series a rule can window over."""
    for step, idle in enumerate((0.9, 0.5, 0.1)):
        wired.idle[0] = idle
        wired.pipeline.collect(now=wired.clock.now + 15.0 * step)
    [series] = wired.pipeline.store.select("cpu_usage", start=0.0, end=1e12)
    assert [round(v) for v in series.values] == [10, 50, 90]
    assert list(series.timestamps) == [5_000.0, 5_015.0, 5_030.0]


def test_collect_prunes_series_that_went_away() -> None:
    """Series silent for longer than the store's max_window are pruned during collect."""
    clock = FakeClock()
    pipeline = Pipeline(store=SeriesStore(max_window=100.0), clock=clock)
    pipeline.store.append("gone", (), 1.0, clock.now)
    pipeline.collect()
    clock.now += 200.0
    pipeline.collect()
    assert "gone" not in pipeline.store.names()


def test_collect_without_providers_is_harmless() -> None:
    """A pipeline whose reader is not attached collects nothing and does not raise."""
    pipeline = Pipeline(clock=FakeClock())
    pipeline.collect()
    assert pipeline.store.names() == []
    assert pipeline.last_collect_seconds >= 0.0


def test_real_system_gauges_feed_the_aliases() -> None:
    """With paca-otel's psutil gauges on the provider, cpu/memory/disk aliases are percents."""
    system = pytest.importorskip("paca_otel.signals._system")
    pipeline = Pipeline()
    meters = MeterProvider(metric_readers=[pipeline.reader])
    try:
        system.SystemMetrics(meters)
        pipeline.collect()
        now = pipeline.clock()
        for alias in ("cpu_usage", "memory_usage"):
            [(labels, value)] = pipeline.store.latest(alias, at=now, lookback=60.0)
            assert labels == ()
            assert 0.0 <= value <= 100.0, alias
        for _, value in pipeline.store.latest("disk_usage", at=now, lookback=60.0):
            assert 0.0 <= value <= 100.0
    finally:
        meters.shutdown()


def test_span_buffer_drains_without_alerting() -> None:
    """A configured process empties the RED span buffer on its own, alerting or not."""
    import time as _time

    from paca_otel._setup import configure

    telemetry = configure(set_global=False, system_metrics=False, metrics_exporter="none")
    try:
        tracer = telemetry.tracer_provider.get_tracer("t")
        for _ in range(50):
            with tracer.start_as_current_span("GET /x", attributes={"http.route": "/x"}):
                pass
        processor = telemetry.pipeline.span_processor
        deadline = _time.monotonic() + 10
        while processor.pending and _time.monotonic() < deadline:
            _time.sleep(0.05)
        assert processor.pending == 0
    finally:
        telemetry.shutdown()


def test_latency_alert_resolves_when_traffic_stops() -> None:
    """latency_p95 > 0.5 fires under slow traffic and resolves once it stops (no lingering)."""
    now = [1000.0]
    pipeline = Pipeline(clock=lambda: now[0], red_window=60.0)
    provider = TracerProvider()
    provider.add_span_processor(pipeline.span_processor)
    tracer = provider.get_tracer("t")
    outbox = Outbox(":memory:", clock=lambda: now[0])
    engine = RuleEngine(
        pipeline.store, outbox=outbox, clock=lambda: now[0], collect=pipeline.collect
    )
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
    outbox.close()
