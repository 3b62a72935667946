"""Scheduled reports: built on a timer and delivered through the notification channels."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from paca_otel import MetricsCollector, MonitoringManager
from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.analysis._report_schedule import REPORT_RULE, ReportScheduler
from paca_otel.analysis.report import generate_report
from paca_otel.delivery._outbox import Outbox
from paca_otel.errors import ConfigError


def test_send_now_enqueues_one_report_per_channel() -> None:
    """A report goes into the outbox once per channel, with its summary and Markdown text."""
    source = MemorySeriesSource()
    source.add("cpu_usage", {}, [(1_000.0 + 60 * i, 20.0 + i / 10) for i in range(60)])
    outbox = Outbox(":memory:")
    scheduler = ReportScheduler(
        lambda now: generate_report(source, 3600.0, now=now),
        outbox,
        ["log", "webhook"],
        every=3600.0,
        service="shop",
    )
    assert scheduler.send_now(now=4_600.0) == 2
    rows = outbox.pending_page("log") + outbox.pending_page("webhook")
    assert {row.notification.channel for row in rows} == {"log", "webhook"}
    event = rows[0].notification.events[0]
    assert event.rule == REPORT_RULE
    assert event.labels["service"] == "shop"
    assert "cpu_usage" in event.annotations["description"]
    assert scheduler.send_now(now=4_600.0) == 0  # the same report is not stored twice
    outbox.close()


def test_workers_sharing_an_outbox_send_each_period_once(tmp_path: Path) -> None:
    """Schedulers of several workers build the same grid-aligned period: one report is stored."""
    source = MemorySeriesSource()
    source.add("cpu_usage", {}, [(1_000.0 + 60 * i, 20.0 + i / 10) for i in range(60)])
    outboxes = [Outbox(tmp_path / "shared.sqlite3") for _ in range(3)]
    schedulers = [
        ReportScheduler(
            lambda now: generate_report(source, 3600.0, now=now), outbox, ["log"], every=3600.0
        )
        for outbox in outboxes
    ]
    # Workers started at different times still agree on when the period ends.
    due = {
        scheduler.next_due(start)
        for scheduler, start in zip(schedulers, (3_700, 5_000, 7_199), strict=True)
    }
    assert due == {7_200.0}
    assert [scheduler.send_now(now=7_200.0) for scheduler in schedulers] == [1, 0, 0]
    assert len(outboxes[0].pending_page("log")) == 1
    for outbox in outboxes:
        outbox.close()


def test_alertmanager_is_not_a_report_channel() -> None:
    """Naming alertmanager for reports is a configuration error that says why."""
    with pytest.raises(ConfigError, match="alertmanager"):
        ReportScheduler(
            lambda now: generate_report(MemorySeriesSource(), 60.0, now=now),
            Outbox(":memory:"),
            ["alertmanager"],
            every=60,
        )


async def test_daily_report_arrives_through_the_log_channel(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With history and report_every set, a report is logged by the log channel on schedule."""
    caplog.set_level(logging.INFO, logger="paca_otel.alerts")
    monitor = MonitoringManager(
        history_enabled=True,
        history_path=tmp_path / "history.sqlite3",
        report_every=0.5,
        report_channels="log",
        prometheus_port=0,
        evaluation_interval=1,
        service_name="report-schedule",
    )
    await monitor.start_monitoring()
    try:
        await MetricsCollector().record_metric("orders_placed", 1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            REPORT_RULE in r.getMessage() for r in caplog.records
        ):
            await asyncio.sleep(0.1)
        assert any(REPORT_RULE in r.getMessage() for r in caplog.records)
    finally:
        await monitor.stop()
