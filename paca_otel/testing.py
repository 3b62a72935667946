"""Helpers for tests, the project's and its users' (in the spirit of Logfire's ``capfire``).

``reset()`` shuts paca-otel down and re-arms the OpenTelemetry globals so each test starts clean;
``capture()`` configures paca-otel with in-memory exporters and hands them to the test.

This module is also a pytest plugin (entry point ``pytest11``): with paca-otel installed, any
test can take the ``capotel`` fixture, which runs the test under ``capture()`` and collects the
spans, metrics, log records and alert notifications it produced (rules that name the
``capture`` channel deliver to ``capotel.notifications``)::

    async def test_checkout_is_traced(capotel):
        await checkout()
        assert [s.name for s in capotel.spans.get_finished_spans()] == ["checkout"]
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paca_otel import _internal
from paca_otel._setup import Telemetry, configure, get_telemetry
from paca_otel.signals._system_source import StaticSource
from paca_otel.signals._system_stats import MemoryStats

if TYPE_CHECKING:
    from paca_otel.rules._models import Notification

__all__ = [
    "CAPTURE_CHANNEL",
    "Captured",
    "CapturingChannel",
    "MemoryStats",
    "StaticSource",
    "capotel",
    "capture",
    "reset",
]

CAPTURE_CHANNEL = "capture"
"""The channel name whose notifications ``capotel`` collects."""


class CapturingChannel:
    """A notification channel that keeps what it is sent (thread-safe), for assertions."""

    resend_interval: float | None = None

    def __init__(self, name: str = CAPTURE_CHANNEL) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        with self._lock:
            self._sent.append(notification)

    @property
    def sent(self) -> list[Notification]:
        """Notifications delivered so far, oldest first."""
        with self._lock:
            return list(self._sent)


def reset() -> None:
    """Shut down the live configuration (if any) and forget one-time warnings."""
    telemetry = get_telemetry()
    if telemetry is not None:
        telemetry.shutdown(timeout_millis=2_000)
    from paca_otel import _runtime as runtime

    runtime.reset()  # a fresh default root: no rules, alerts or series carried over
    _internal.reset_warnings()


@dataclass
class Captured:
    """What ``capture()`` recorded: spans, metrics and log records, all in memory."""

    telemetry: Telemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    logs: InMemoryLogRecordExporter
    channel: CapturingChannel = field(default_factory=CapturingChannel)

    @property
    def notifications(self) -> list[Notification]:
        """Alert notifications delivered to the ``capture`` channel."""
        return self.channel.sent

    def metric_names(self) -> set[str]:
        data = self.metrics.get_metrics_data()
        return {
            metric.name
            for rm in (data.resource_metrics if data else ())
            for sm in rm.scope_metrics
            for metric in sm.metrics
        }


@contextmanager
def capture(**settings: Any) -> Iterator[Captured]:
    """Configure paca-otel with in-memory exporters for the duration of the block.

    ``gc_freeze`` defaults to off here: a frozen heap is never collected for cycles, and in a
    test session it would hold whatever garbage the earlier tests left (apps pass it on).
    """
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    settings.setdefault("gc_freeze", False)
    settings.setdefault("metrics_exporter", "none")
    settings.setdefault("traces_exporter", "none")
    settings.setdefault("logs_exporter", "none")
    telemetry = configure(
        metric_readers=[reader], span_processors=[SimpleSpanProcessor(spans)], **settings
    )
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # untyped in the SDK
    telemetry.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    if telemetry.settings.logs:
        # With no log exporter configure() leaves the OTel bridge off; here it feeds ``logs``.
        from paca_otel.signals._logs import install_logging

        telemetry.logging_handles = install_logging(
            logger_provider=telemetry.logger_provider,
            service_name=telemetry.settings.service_name,
        )
    try:
        yield Captured(telemetry=telemetry, spans=spans, metrics=reader, logs=logs)
    finally:
        telemetry.shutdown(timeout_millis=2_000)


@pytest.fixture
def capotel() -> Iterator[Captured]:
    """Run the test under :func:`capture`: spans, metrics, logs and notifications in memory."""
    reset()
    with capture() as captured:
        telemetry = captured.telemetry
        telemetry.runtime.attach(telemetry).add_channel(CAPTURE_CHANNEL, captured.channel)
        yield captured
    reset()
