"""The seed's metric commands: MonitoringManager + MetricsCollector as the seed used them."""

from __future__ import annotations

import math
import time

import pytest

from paca_otel import MetricsCollector, MetricsSnapshot, MonitoringManager
from paca_otel.pipeline._aliases import ALIASES
from paca_otel.signals._system_source import StaticSource
from paca_otel.signals._system_stats import MemoryStats


async def test_seed_usage_start_record_read_stop() -> None:
    """start -> start_monitoring -> record_metric -> get_current_metrics -> stop."""
    monitor = MonitoringManager(service_name="seed", metrics_exporter="none")
    await monitor.start()
    await monitor.start_monitoring()
    collector = MetricsCollector()
    await collector.record_metric("jobs_done", 1, {"endpoint": "/api/users"}, kind="counter")
    await collector.record_metric("jobs_done", 2, {"endpoint": "/api/users"}, kind="counter")
    await collector.record_metric("queue_depth", 7)
    metrics = await monitor.get_current_metrics()
    assert isinstance(metrics, MetricsSnapshot)
    assert metrics["jobs_done"] == 3
    assert metrics["queue_depth"] == 7
    for alias in ("cpu_usage", "memory_usage", "disk_usage"):
        assert 0.0 <= metrics[alias] <= 100.0
    point = metrics.points("jobs_done")[0]
    assert point.labels == {"endpoint": "/api/users"}
    await monitor.stop()
    assert not monitor.is_running


async def test_aliases_come_from_the_metric_reader_not_psutil() -> None:
    """The percent aliases are computed from the gauges' data points (a fake source here)."""
    source = StaticSource()
    source.mem = MemoryStats(total=1000, states={"used": 720, "free": 280})
    from paca_otel import configure

    configure(system_source=source, metrics_exporter="none")
    monitor = MonitoringManager()
    await monitor.start()
    metrics = await monitor.get_current_metrics()
    assert metrics.memory_usage == pytest.approx(72.0)
    assert metrics["memory_usage"] == pytest.approx(72.0)
    await monitor.stop()


async def test_start_and_start_monitoring_are_idempotent() -> None:
    """Calling start twice builds one configuration."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start()
    first = monitor.telemetry
    await monitor.start()
    await monitor.start_monitoring()
    await monitor.start_monitoring()
    assert monitor.telemetry is first
    await monitor.stop()
    await monitor.stop()


async def test_reading_before_start_is_a_clear_error() -> None:
    """get_current_metrics before start says what to do."""
    with pytest.raises(RuntimeError, match="start"):
        await MonitoringManager().get_current_metrics()


async def test_manager_adopts_a_live_configuration() -> None:
    """A bare MonitoringManager uses configure()'s handle and leaves it running at stop."""
    from paca_otel import configure

    tel = configure(metrics_exporter="none", system_metrics=False)
    monitor = MonitoringManager()
    await monitor.start()
    assert monitor.telemetry is tel
    await monitor.stop()
    assert not tel.is_shutdown


def test_record_metric_rejects_bad_names_and_drops_nan() -> None:
    """Bad names raise a ValueError subclass; NaN is dropped without raising."""
    import asyncio

    from paca_otel import InvalidMetricNameError

    collector = MetricsCollector()
    with pytest.raises(InvalidMetricNameError):
        asyncio.run(collector.record_metric("9 bad name", 1))
    asyncio.run(collector.record_metric("fine", float("nan")))


async def test_a_collector_outlives_stop_and_start() -> None:
    """A module-level collector keeps recording into the new providers after a restart."""
    collector = MetricsCollector()
    for round_ in range(2):
        monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
        await monitor.start()
        await collector.record_metric("jobs", 1 + round_, kind="counter")
        metrics = await monitor.get_current_metrics()
        assert metrics["jobs"] == 1 + round_
        await monitor.stop()


def _serve(route: str, status: int, seconds: float) -> None:
    """Record one finished server span, as the FastAPI instrumentation would."""
    from opentelemetry import trace

    tracer = trace.get_tracer("tests")
    start = time.time_ns()
    span = tracer.start_span(
        f"GET {route}",
        kind=trace.SpanKind.SERVER,
        start_time=start,
        attributes={
            "http.route": route,
            "http.request.method": "GET",
            "http.response.status_code": status,
        },
    )
    span.end(end_time=start + int(seconds * 1e9))


async def test_every_documented_alias_is_readable() -> None:
    """Each alias of the README's table is a key and a field: error_rate, latency_p95..."""
    monitor = MonitoringManager(metrics_exporter="none")
    await monitor.start_monitoring()
    _serve("/api/users", 200, 0.1)
    _serve("/api/users", 500, 0.3)
    metrics = await monitor.get_current_metrics()
    for alias in ALIASES:
        assert isinstance(metrics[alias], float), alias
        assert getattr(metrics, alias) is not None, alias
    assert metrics["request_count"] == 2
    assert metrics["error_count"] == 1
    assert metrics["error_rate"] == pytest.approx(0.5)
    assert metrics["request_rate"] > 0
    assert metrics["latency_p50"] == pytest.approx(0.2)
    assert 0.2 < metrics["latency_p95"] <= 0.3
    assert set(ALIASES) <= set(metrics)
    await monitor.stop()


async def test_request_aliases_without_traffic_are_zero_and_latency_has_no_value() -> None:
    """No request yet: rates and counts read 0, latencies NaN (None as attribute), no KeyError."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start()
    metrics = await monitor.get_current_metrics()
    assert metrics["request_rate"] == 0.0
    assert metrics["error_rate"] == 0.0
    assert math.isnan(metrics["latency_p95"])
    assert metrics.latency_p95 is None
    await monitor.stop()


async def test_str_is_a_short_summary_and_repr_stays_complete() -> None:
    """print(metrics) shows aliases with units and counts per family, not every data point."""
    monitor = MonitoringManager(metrics_exporter="none")
    await monitor.start_monitoring()
    await MetricsCollector().record_metric("response_time", 0.5, {"endpoint": "/api/users"})
    metrics = await monitor.get_current_metrics()
    text = str(metrics)
    lines = text.splitlines()
    assert len(lines) == len(ALIASES) + 2
    assert "MetricPoint" not in text
    assert any(line.split()[0] == "cpu_usage" and line.endswith("%") for line in lines)
    assert "latency_p95" in text
    assert "system " in lines[-1]
    assert "response_time 1 (1 metric)" in lines[-1]
    assert len(text) < 1200
    assert "MetricPoint(" in repr(metrics)
    await monitor.stop()


async def test_first_cpu_usage_after_start_is_a_measurement() -> None:
    """The first cpu_usage right after start is measured over the CPU window, not since boot."""
    from paca_otel import configure
    from paca_otel.signals._system_source import StaticSource as Source

    born = time.monotonic()

    class HalfBusy(Source):
        """A CPU half busy, its counters moving in 50 ms ticks as the kernel's do (coarser)."""

        def cpu_times(self) -> dict[str, float]:
            ticks = int((time.monotonic() - born) / 0.05)
            return {"user": 100.0 + ticks, "system": 50.0, "idle": 800.0 + ticks, "iowait": 10.0}

    configure(system_source=HalfBusy(), metrics_exporter="none")  # since boot: 16.7 % busy
    monitor = MonitoringManager()
    await monitor.start()
    metrics = await monitor.get_current_metrics()
    assert metrics["cpu_usage"] == pytest.approx(50.0)
    await monitor.stop()
