"""The seed's metric commands: MonitoringManager + MetricsCollector as the seed used them."""

from __future__ import annotations

import pytest

from paca_otel import MetricsCollector, MetricsSnapshot, MonitoringManager
from paca_otel.signals.system_source import MemoryStats, StaticSource


async def test_seed_usage_start_record_read_stop() -> None:
    """start -> start_monitoring -> record_metric -> get_current_metrics -> stop."""
    monitor = MonitoringManager(service_name="seed", metrics_exporter="none")
    await monitor.start()
    await monitor.start_monitoring()
    collector = MetricsCollector()
    await collector.record_metric("request_count", 1, {"endpoint": "/api/users"}, kind="counter")
    await collector.record_metric("request_count", 2, {"endpoint": "/api/users"}, kind="counter")
    await collector.record_metric("queue_depth", 7)
    metrics = await monitor.get_current_metrics()
    assert isinstance(metrics, MetricsSnapshot)
    assert metrics["request_count"] == 3
    assert metrics["queue_depth"] == 7
    for alias in ("cpu_usage", "memory_usage", "disk_usage"):
        assert 0.0 <= metrics[alias] <= 100.0
    point = metrics.points("request_count")[0]
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
