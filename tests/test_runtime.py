"""The process-wide alerting runtime: attach/detach with the telemetry, user channels."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paca_otel import AlertManager, ConfigError, MonitoringManager, Notification
from tests._wait import async_wait_until


class _Inbox:
    """A user channel (the NotificationChannel protocol) that keeps what it gets."""

    name = "inbox"
    resend_interval = None

    def __init__(self) -> None:
        self.received: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.received.append(notification)


async def test_stop_stops_the_loops_and_start_resumes_them() -> None:
    """After MonitoringManager.stop no thread evaluates; start_monitoring resumes with the rules."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start_monitoring()
    alerts = AlertManager()
    await alerts.add_rule("never", "cpu_usage > 1000", "log", 60)
    engine = alerts.runtime.engine
    assert engine.scheduler.running
    await monitor.stop()
    assert not engine.scheduler.running
    await monitor.start_monitoring()
    assert engine.scheduler.running
    assert [r.name for r in alerts.rules] == ["never"]
    await monitor.stop()


async def test_user_channel_added_after_start_receives_notifications() -> None:
    """add_channel on a running runtime gives the new channel a delivery worker."""
    monitor = MonitoringManager(metrics_exporter="none", system_metrics=False)
    await monitor.start_monitoring()
    alerts = AlertManager()
    inbox = _Inbox()
    alerts.add_channel("inbox", inbox)
    await alerts.add_rule("deep_queue", "queue_depth > 10", "inbox", 60)
    from paca_otel import MetricsCollector

    MetricsCollector().set_gauge("queue_depth", 50)
    await alerts.evaluate()
    await async_wait_until(lambda: inbox.received, "the new channel's delivery", timeout=30)
    assert [n.events[0].rule for n in inbox.received] == ["deep_queue"]
    await monitor.stop()


@pytest.mark.parametrize("seconds", [0.5, 1.0, 15.0, 86_400.0, 86_401.0, float("nan")])
def test_settings_and_engine_take_the_same_evaluation_intervals(seconds: float) -> None:
    """evaluation_interval is checked once: settings and engine accept exactly the same values."""
    from paca_otel.alerting.engine import RuleEngine
    from paca_otel.alerting.outbox import Outbox
    from paca_otel.config import load_settings
    from paca_otel.pipeline.store import SeriesStore

    def accepted(build: Callable[[], object]) -> bool:
        if 1.0 <= seconds <= 86_400.0:
            build()
            return True
        with pytest.raises(ConfigError, match=r"evaluation_interval.*1\.\.86400"):
            build()
        return False

    by_settings = accepted(lambda: load_settings(evaluation_interval=seconds))
    outbox = Outbox(":memory:")
    try:
        by_engine = accepted(
            lambda: RuleEngine(SeriesStore(), outbox=outbox, evaluation_interval=seconds)
        )
    finally:
        outbox.close()
    assert by_settings == by_engine
