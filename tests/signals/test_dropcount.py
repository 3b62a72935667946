"""Lost spans and log records are counted in paca_otel.dropped{signal, reason}."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from paca_otel import _internal
from paca_otel.signals._dropcount import CountingSpanProcessor
from tests.integration.conftest import wait_until


class _Exporter(SpanExporter):
    """Fails or blocks on demand; records what it was given."""

    def __init__(self, result: SpanExportResult) -> None:
        self.result = result
        self.gate = threading.Event()
        self.gate.set()
        self.seen = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(10)
        self.seen += len(spans)
        return self.result


def _dropped(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    data = reader.get_metrics_data()
    found: dict[tuple[str, str], int] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != "paca_otel.dropped":
                    continue
                for point in metric.data.data_points:  # type: ignore[union-attr]  # a Sum
                    attrs = point.attributes or {}
                    key = (str(attrs.get("signal")), str(attrs.get("reason")))
                    found[key] = int(point.value)  # type: ignore[union-attr]  # a Sum point
    return found


def _setup(exporter: SpanExporter, **kwargs: object) -> tuple[TracerProvider, InMemoryMetricReader]:
    from opentelemetry import metrics

    from paca_otel.telemetry._providers import _set_globals

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider()
    _set_globals(tracer_provider, meter_provider, LoggerProvider())
    assert metrics.get_meter_provider() is meter_provider
    tracer_provider.add_span_processor(CountingSpanProcessor(exporter, **kwargs))  # type: ignore[arg-type]  # test kwargs
    return tracer_provider, reader


def test_failed_exports_are_counted_per_signal() -> None:
    """Every span in a batch the exporter fails on counts as traces/export_failed."""
    _internal.drops.reset()
    provider, reader = _setup(_Exporter(SpanExportResult.FAILURE))
    for i in range(7):
        provider.get_tracer("t").start_span(f"s{i}").end()
    provider.force_flush()
    assert _dropped(reader) == {("traces", "export_failed"): 7}
    provider.shutdown()


def test_queue_overflow_is_counted() -> None:
    """Spans evicted from a full batch queue count as traces/queue_full."""
    _internal.drops.reset()
    exporter = _Exporter(SpanExportResult.SUCCESS)
    exporter.gate.clear()  # the worker blocks on the first batch
    provider, reader = _setup(
        exporter, max_queue_size=10, max_export_batch_size=1, schedule_delay_millis=1
    )
    tracer = provider.get_tracer("t")
    tracer.start_span("first").end()
    assert wait_until(lambda: True, 0)  # the worker has the first span or will shortly
    for i in range(30):
        tracer.start_span(f"s{i}").end()
    exporter.gate.set()
    provider.force_flush()
    dropped = _dropped(reader).get(("traces", "queue_full"), 0)
    assert dropped > 0
    assert exporter.seen + dropped == 31
    provider.shutdown()


def test_failed_metric_exports_are_counted() -> None:
    """A metric exporter's failed export counts its data points as metrics/export_failed."""
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        PeriodicExportingMetricReader,
    )

    from paca_otel.signals._dropcount import counting_metric_exporter

    class Failing(MetricExporter):
        def export(
            self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
        ) -> MetricExportResult:
            return MetricExportResult.FAILURE

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
            pass

    from opentelemetry import metrics

    from paca_otel.telemetry._providers import _set_globals

    _internal.drops.reset()
    reader = InMemoryMetricReader()
    failing = PeriodicExportingMetricReader(
        counting_metric_exporter(Failing)(), export_interval_millis=3_600_000
    )
    provider = MeterProvider(metric_readers=[reader, failing])
    _set_globals(TracerProvider(), provider, LoggerProvider())
    metrics.get_meter("t").create_counter("orders").add(1, {"shop": "a"})
    failing.force_flush()
    assert _dropped(reader).get(("metrics", "export_failed"), 0) >= 1
    provider.shutdown()
