"""MonitoringManager.generate_report: the seed's analysis report over the embedded history."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from paca_otel import MetricsCollector, MonitoringManager
from paca_otel.analysis.report_render import render
from paca_otel.errors import ConfigError


async def test_report_reads_the_history_the_collection_feeds(tmp_path: Path) -> None:
    """With history on, collections land in the store and a report is built from them."""
    monitor = MonitoringManager(
        history_enabled=True,
        history_path=tmp_path / "history.sqlite3",
        history_interval=0.2,
        prometheus_port=0,
        service_name="report-test",
    )
    await monitor.start_monitoring()
    try:
        telemetry = monitor.telemetry
        assert telemetry is not None
        assert telemetry.history is not None
        await MetricsCollector().record_metric("orders_placed", 1, {"shop": "a"})
        deadline = time.monotonic() + 15
        while "orders_placed" not in telemetry.history.names() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "orders_placed" in telemetry.history.names()
        report = await monitor.generate_report("1h")
        assert report.summary
        text = render(report, "md")
        assert "report" in text.lower()
    finally:
        await monitor.stop()


async def test_report_without_history_says_what_to_set() -> None:
    """Without history or a source, generate_report names the setting to turn on."""
    monitor = MonitoringManager(prometheus_port=0, service_name="report-none")
    await monitor.start()
    try:
        with pytest.raises(ConfigError, match="history_enabled"):
            await monitor.generate_report("24h")
        with pytest.raises(ConfigError, match="duration"):
            await monitor.generate_report("soon")
    finally:
        await monitor.stop()
