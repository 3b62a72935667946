"""Periodic push of the one collection to metric exporters (OTLP, console).

The SDK's ``PeriodicExportingMetricReader`` is a reader of its own, which would aggregate every
measurement once more (see :mod:`paca_otel.pipeline._collection`). This thread asks the one
collection for data every ``interval`` and hands it to each exporter through the exporters'
public ``export``/``force_flush``/``shutdown``, so OTLP receives exactly the numbers that
``/metrics`` and the alerting store see.

Exports run on this thread only, never on the request path. The exporters set-up builds count
their failed batches themselves (``paca_otel.dropped{signal="metrics", reason="export_failed"}``,
:mod:`paca_otel.signals._dropcount`); as the data is cumulative, the next export carries the
totals a failed one lost. The data is cumulative, the OTLP exporters' default temporality.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from paca_otel._internal import handle_internal_errors

logger = logging.getLogger("paca_otel.pipeline")


class PeriodicExport:
    """Collect every ``interval`` seconds and export to each of ``exporters``.

    Args:
        collect: Returns fresh data (``Collection.collect_now``), or ``None``.
        exporters: Where the data goes.
        interval: Seconds between exports (``OTEL_METRIC_EXPORT_INTERVAL`` / 1000).
        timeout: Seconds each export may take (``OTEL_METRIC_EXPORT_TIMEOUT`` / 1000).
    """

    def __init__(
        self,
        collect: Callable[[], MetricsData | None],
        exporters: Sequence[MetricExporter],
        *,
        interval: float,
        timeout: float,
    ) -> None:
        self._collect = collect
        self._exporters = list(exporters)
        self._interval = interval
        self._timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.exports = 0

    def start(self) -> None:
        """Start the export thread (a daemon: it never holds the process open)."""
        if self._thread is not None or not self._exporters:
            return
        self._thread = threading.Thread(
            target=self._run, name="paca-otel-metric-export", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.export_now()

    def export_now(self) -> bool:
        """Collect and export once; False if some exporter failed."""
        with self._lock:
            data = self._collect()
            if data is None:
                return True
            ok = True
            for exporter in self._exporters:
                result = MetricExportResult.FAILURE
                with handle_internal_errors("metric_export", logger):
                    result = exporter.export(data, timeout_millis=self._timeout * 1000)
                ok = ok and result is MetricExportResult.SUCCESS
            self.exports += 1
            return ok

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Export what is there now, then flush each exporter."""
        ok = self.export_now()
        for exporter in self._exporters:
            with handle_internal_errors("metric_export", logger):
                ok = exporter.force_flush(timeout_millis=int(timeout_millis)) and ok
        return ok

    def shutdown(self, timeout_millis: float = 10_000) -> None:
        """Stop the thread, export a last time, shut the exporters down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_millis / 1000)
        self.export_now()
        for exporter in self._exporters:
            with handle_internal_errors("metric_export", logger):
                exporter.shutdown(timeout_millis=timeout_millis)
