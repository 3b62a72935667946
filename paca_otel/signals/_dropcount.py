"""Count the spans and log records the SDK's batch processors lose, per signal and reason.

The OTel SDK's ``BatchSpanProcessor``/``BatchLogRecordProcessor`` drop the oldest item when
their queue is full and lose a whole batch when an export fails; both only log. The README
promises those losses are counted in ``paca_otel.dropped{signal=..., reason=...}``. This module
does that through public seams only: an exporter wrapper sees every batch that leaves the queue
and its result, and a processor wrapper counts what enters the queue, so the queue's length is
known without reading the SDK's private deque. Reasons: ``queue_full``, ``export_failed`` and
``shutdown`` (still queued when the processor stopped).

Hand-written because the SDK's own processor metrics (``otel.sdk.processor.*``) are off unless
an experimental environment variable is set and they do not cover failed exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from paca_otel._internal import drops

__all__ = ["CountingLogProcessor", "CountingSpanProcessor", "counting_metric_exporter"]

_T = TypeVar("_T")


class _Queue(Generic[_T]):
    """Bookkeeping of one batch queue: items in it, shared by the two wrappers below.

    Counts are plain ints updated without a lock (the hot path takes none); under threads they
    may be off by a few, which is fine for a loss counter.
    """

    def __init__(self, signal: str, capacity: int) -> None:
        self.signal = signal
        self.capacity = capacity
        self.queued = 0

    def entered(self) -> None:
        if self.queued >= self.capacity:
            drops.add("queue_full", signal=self.signal)  # the SDK evicts the oldest item
        else:
            self.queued += 1

    def left(self, count: int) -> None:
        self.queued = max(0, self.queued - count)

    def failed(self, count: int) -> None:
        drops.add("export_failed", count, signal=self.signal)

    def stopped(self) -> None:
        if self.queued:
            drops.add("shutdown", self.queued, signal=self.signal)
            self.queued = 0


class _CountingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, queue: _Queue[ReadableSpan]) -> None:
        self.inner = inner
        self._queue = queue

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._queue.left(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception:
            self._queue.failed(len(spans))
            raise
        if result is not SpanExportResult.SUCCESS:
            self._queue.failed(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingSpanProcessor(SpanProcessor):
    """A ``BatchSpanProcessor`` over ``exporter`` whose losses are counted (see module doc)."""

    def __init__(self, exporter: SpanExporter, max_queue_size: int = 2048, **kwargs: Any) -> None:
        self._queue: _Queue[ReadableSpan] = _Queue("traces", max_queue_size)
        self.exporter = exporter
        self._batch = BatchSpanProcessor(
            _CountingSpanExporter(exporter, self._queue), max_queue_size=max_queue_size, **kwargs
        )

    # No on_start: a batch processor acts on finished spans only (the SDK's does nothing at
    # start), and a processor without one is skipped at start (telemetry/_fanout.py).

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled:
            self._queue.entered()
        self._batch.on_end(span)

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self._queue.stopped()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batch.force_flush(timeout_millis)


class _CountingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, queue: _Queue[ReadWriteLogRecord]) -> None:
        self.inner = inner
        self._queue = queue

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self._queue.left(len(batch))
        try:
            result = self.inner.export(batch)
        except Exception:
            self._queue.failed(len(batch))
            raise
        if result is not LogRecordExportResult.SUCCESS:
            self._queue.failed(len(batch))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


class CountingLogProcessor(LogRecordProcessor):
    """A ``BatchLogRecordProcessor`` over ``exporter`` whose losses are counted."""

    def __init__(
        self, exporter: LogRecordExporter, max_queue_size: int = 2048, **kwargs: Any
    ) -> None:
        self._queue: _Queue[ReadWriteLogRecord] = _Queue("logs", max_queue_size)
        self.exporter = exporter
        self._batch = BatchLogRecordProcessor(
            _CountingLogExporter(exporter, self._queue), max_queue_size=max_queue_size, **kwargs
        )

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self._queue.entered()
        self._batch.on_emit(log_record)

    def shutdown(self) -> None:
        self._batch.shutdown()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        self._queue.stopped()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batch.force_flush(timeout_millis)


def _points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    )


def counting_metric_exporter(cls: type[MetricExporter]) -> type[MetricExporter]:
    """A subclass of ``cls`` whose failed exports count as metrics/export_failed data points.

    A subclass rather than a wrapper: the periodic reader takes the exporter's temporality and
    aggregation preferences from the exporter itself, which a wrapper could only copy from
    private attributes. Overriding the public ``export`` keeps every constructor argument and
    environment variable of ``cls`` working as before.
    """

    def export(
        self: MetricExporter,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: Any,
    ) -> MetricExportResult:
        try:
            result = cls.export(self, metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            drops.add("export_failed", _points(metrics_data), signal="metrics")
            raise
        if result is not MetricExportResult.SUCCESS:
            drops.add("export_failed", _points(metrics_data), signal="metrics")
        return result

    return type(f"Counting{cls.__name__}", (cls,), {"export": export, "__doc__": cls.__doc__})
