"""The three SDK providers of one configuration, and installing them as the OTel globals.

The TracerProvider gets the sampler, the RED span processor and the (scrubbed, counted)
exporters; the MeterProvider one collection that every metric consumer reads; the
LoggerProvider the scrubber before its exporters. None registers the SDK's own atexit hook:
the :class:`~paca_otel._setup.Telemetry` handle shuts them down, bounded, instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from prometheus_client import CollectorRegistry

from paca_otel._internal import drops
from paca_otel.config import PacaOtelSettings
from paca_otel.config._telemetry import BUILTIN_SAMPLERS
from paca_otel.signals._dropcount import CountingLogProcessor, CountingSpanProcessor
from paca_otel.telemetry._exporters import (
    _entry_point,
    _log_exporters,
    _metric_exporters,
    _span_exporters,
)
from paca_otel.telemetry._fanout import SpanFanOut

if TYPE_CHECKING:
    from paca_otel.pipeline._collection import Collection
    from paca_otel.pipeline._export import PeriodicExport
    from paca_otel.pipeline._pipeline import Pipeline
    from paca_otel.privacy import Scrubber


def _tracer_provider(
    settings: PacaOtelSettings,
    resource: Resource,
    pipeline: Pipeline,
    scrubber: Scrubber | None,
    extra: Sequence[SpanProcessor],
) -> TracerProvider:
    # The SDK's own atexit hooks would shut down a second time after ours (and warn); the
    # handle registers one bounded atexit shutdown instead.
    provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
    # Ours share one processor slot (see telemetry/_fanout.py); the user's come after it.
    ours: list[SpanProcessor] = [pipeline.span_processor]
    for exporter in _span_exporters(settings):
        if scrubber is not None:  # scrubbed on the export thread, off the request path
            from paca_otel.privacy import ScrubbingSpanExporter

            ours.append(CountingSpanProcessor(ScrubbingSpanExporter(exporter, scrubber)))
        else:
            ours.append(CountingSpanProcessor(exporter))
    provider.add_span_processor(SpanFanOut(ours))
    for processor in extra:
        provider.add_span_processor(processor)
    return provider


def _logger_provider(
    settings: PacaOtelSettings, resource: Resource, scrubber: Scrubber | None
) -> LoggerProvider:
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    if scrubber is not None:  # first, so the exporters' processors see scrubbed records
        from paca_otel.privacy import ScrubbingLogRecordProcessor

        provider.add_log_record_processor(ScrubbingLogRecordProcessor(scrubber))
    for log_exporter in _log_exporters(settings):
        provider.add_log_record_processor(CountingLogProcessor(log_exporter))
    return provider


def _log_filter(scrubber: Scrubber | None) -> logging.Filter | None:
    if scrubber is None:
        return None
    from paca_otel.privacy import ScrubbingLogFilter

    return ScrubbingLogFilter(scrubber)


def _exemplar_filter(settings: PacaOtelSettings) -> ExemplarFilter | None:
    """No exemplars unless something exports them (or ``OTEL_METRICS_EXEMPLAR_FILTER`` asks).

    The SDK's default (``trace_based``) offers every measurement made inside a sampled span to
    an exemplar reservoir, which nearly doubles the cost of a histogram record on the request
    path. The Prometheus exposition and the alerting store never show exemplars, so without an
    OTLP metrics exporter they would be computed for nothing.
    """
    if os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None  # the SDK reads the variable itself
    if any(name != "prometheus" for name in settings.exporters("metrics")):
        return None
    return AlwaysOffExemplarFilter()


def _metric_consumers(
    settings: PacaOtelSettings, collection: Collection, extra: Sequence[MetricReader]
) -> tuple[list[MetricReader], CollectorRegistry | None, PeriodicExport | None]:
    """The readers to attach, the scrape registry and the periodic push, all over one reader.

    Every consumer (exposition, alerting, snapshot, OTLP) reads ``collection``'s collections,
    so each measurement is aggregated once (see :mod:`paca_otel.pipeline._collection`).
    """
    readers: list[MetricReader] = [collection, *extra]
    registry: CollectorRegistry | None = None
    metric_exporters = settings.exporters("metrics")
    if "prometheus" in metric_exporters:
        from paca_otel.pipeline._prometheus import CollectionCollector

        # No auto_describe: it would collect at registration, before the MeterProvider exists.
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CollectionCollector(collection.collect_service))
    pushed: list[MetricExporter] = []
    for metric_exporter in _metric_exporters(settings):
        if isinstance(metric_exporter, MetricReader):  # a pull reader from an entry point
            readers.append(metric_exporter)
        else:
            pushed.append(metric_exporter)
    metric_export = None
    if pushed:
        from paca_otel.pipeline._export import PeriodicExport

        metric_export = PeriodicExport(
            collection.collect_now,
            pushed,
            interval=settings.metric_export_interval / 1000,
            timeout=settings.metric_export_timeout / 1000,
        )
    return readers, registry, metric_export


def _sampler(settings: PacaOtelSettings) -> sampling.Sampler:
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    name = settings.traces_sampler
    if name not in BUILTIN_SAMPLERS:
        # The SDK's convention for plug-in samplers: the factory gets the argument (or None).
        factory = _entry_point("opentelemetry_traces_sampler", name)
        arg = None if settings.traces_sampler_arg is None else str(settings.traces_sampler_arg)
        sampler: sampling.Sampler = factory(arg)
        return sampler
    root: sampling.Sampler
    if name.endswith("always_off"):
        root = sampling.ALWAYS_OFF
    elif name.endswith("traceidratio"):
        root = sampling.TraceIdRatioBased(ratio)
    else:
        root = sampling.ALWAYS_ON
    return sampling.ParentBased(root) if name.startswith("parentbased_") else root


def _set_globals(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, logger_provider: LoggerProvider
) -> None:
    """Install the providers as the OTel globals, also after an earlier configure/shutdown.

    The OTel API lets a global be set once per process and offers no public way to replace it.
    Re-configuration after ``shutdown`` is a supported use here (tests, reloads), so the
    set-once guards are re-armed through :mod:`paca_otel._otel_globals`, the one place that
    touches them, with a fallback (keep the first globals, warn once) if they ever change.
    """
    from paca_otel._otel_globals import rearm_global_providers

    rearm_global_providers()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    set_logger_provider(logger_provider)
    drops.bind()  # the self-metric's counter belonged to the previous provider
    from paca_otel.signals._metrics import rebind_global_collectors

    rebind_global_collectors()
