"""configure()/shutdown(): the providers, resource and exporters of one process.

One call builds a TracerProvider, MeterProvider and LoggerProvider from the settings, installs
them as the OpenTelemetry globals and returns a :class:`Telemetry` handle that owns them. Calling
``configure`` again with the same settings returns the same handle; with other settings it shuts
the old providers down first, so there are never duplicate providers, readers or servers.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from paca_otel._internal import drops
from paca_otel._version import __version__
from paca_otel.config import PacaOtelSettings, Signal, load_settings, split_endpoint
from paca_otel.errors import ConfigError
from paca_otel.privacy import build_scrubber
from paca_otel.signals.dropcount import (
    CountingLogProcessor,
    CountingSpanProcessor,
    counting_metric_exporter,
)
from paca_otel.signals.redact import redactor

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import Response

    from paca_otel.analysis.history import HistoryStore
    from paca_otel.pipeline._collection import Collection
    from paca_otel.pipeline._export import PeriodicExport
    from paca_otel.pipeline.pipeline import Pipeline
    from paca_otel.privacy import Scrubber
    from paca_otel.signals.logs import LoggingHandles
    from paca_otel.signals.system import SystemMetrics
    from paca_otel.signals.system_source import SystemSource

logger = logging.getLogger("paca_otel")

_lock = threading.RLock()
_current: Telemetry | None = None
_INSTANCE_ID = str(uuid.uuid4())  # one per process, stable across re-configuration


@dataclass(eq=False)
class Telemetry:
    """The handle ``configure`` returns: it owns the providers and everything they export to."""

    settings: PacaOtelSettings
    resource: Resource
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider
    collection: Collection
    pipeline: Pipeline
    prometheus_registry: CollectorRegistry | None = None
    metric_export: PeriodicExport | None = None
    system: SystemMetrics | None = None
    history: HistoryStore | None = None
    logging_handles: LoggingHandles | None = None
    _prometheus_server: tuple[WSGIServer, threading.Thread] | None = None
    _apps: list[Any] = field(default_factory=list)
    _shutdown_hooks: list[Callable[[], object]] = field(default_factory=list)
    _is_shutdown: bool = False

    @property
    def is_shutdown(self) -> bool:
        return self._is_shutdown

    def instrument_app(self, app: FastAPI, *, metrics_path: str | None = "/metrics") -> None:
        """Trace a FastAPI app with :func:`~paca_otel.instrument_fastapi`; mount ``/metrics`` on it.

        Idempotent per app: a second call changes nothing.
        """
        if any(a is app for a in self._apps):
            return
        from paca_otel.signals.http_server import instrument_fastapi

        instrument_fastapi(
            app, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )
        if metrics_path and self.prometheus_registry is not None:
            app.add_route(
                metrics_path, _scrape_endpoint(self.prometheus_registry, self.settings), ["GET"]
            )
        self._apps.append(app)

    def add_shutdown_hook(self, hook: Callable[[], object]) -> None:
        """Call ``hook`` first thing in :meth:`shutdown` (the alerting runtime detaches so)."""
        self._shutdown_hooks.append(hook)

    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        """Export what is buffered now; False if some provider did not finish in time.

        The SDK's flushes wait out an exporter's whole retry budget when a collector is down,
        whatever timeout they are given, so they run in parallel against one deadline.
        """
        results: dict[str, bool] = {}

        def flush(name: str, call: Callable[[int], bool]) -> Callable[[], object]:
            return lambda: results.__setitem__(name, bool(call(timeout_millis)))

        late = _run_bounded(
            [
                ("traces", flush("traces", self.tracer_provider.force_flush)),
                ("metrics", flush("metrics", self._flush_metrics)),
                ("logs", flush("logs", self.logger_provider.force_flush)),
            ],
            time.monotonic() + timeout_millis / 1000,
        )
        return not late and all(results.values())

    def _flush_metrics(self, timeout_millis: int) -> bool:
        pushed = self.metric_export.force_flush(timeout_millis) if self.metric_export else True
        return self.meter_provider.force_flush(timeout_millis) and pushed

    def _stop_metrics(self, timeout_millis: float) -> None:
        # The last push needs the provider alive: export first, then shut the provider down.
        if self.metric_export is not None:
            self.metric_export.shutdown(timeout_millis)
        self.meter_provider.shutdown(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: int | None = None) -> None:
        """Flush and stop everything, never taking much longer than the timeout.

        The SDK's own shutdowns can block on an unreachable collector for the exporter's whole
        retry budget, so each runs in a daemon thread joined against one shared deadline.
        """
        global _current  # noqa: PLW0603  # the process-wide handle is the point of configure()
        with _lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
            if _current is self:
                _current = None
        atexit.unregister(self.shutdown)
        for hook in self._shutdown_hooks:
            hook()
        timeout = (
            timeout_millis / 1000 if timeout_millis is not None else self.settings.shutdown_timeout
        )
        deadline = time.monotonic() + timeout
        if self.logging_handles is not None:
            self.logging_handles.uninstall()
        self.pipeline.stop_draining()
        if self.history is not None:
            self.pipeline.remove_tick("history")
            self.history.close()
        if self.system is not None:
            self.system.shutdown()
        if self._prometheus_server is not None:
            server, thread = self._prometheus_server
            server.shutdown()
            server.server_close()
            thread.join(timeout=1)
        for app in self._apps:
            from paca_otel.signals.http_server import uninstrument_fastapi

            uninstrument_fastapi(app)
        self._apps.clear()
        late = _run_bounded(
            [
                ("traces", self.tracer_provider.shutdown),
                ("metrics", lambda: self._stop_metrics(timeout * 1000)),
                ("logs", self.logger_provider.shutdown),
            ],
            deadline,
        )
        if late:
            logger.warning(
                "paca-otel: %s did not shut down in %.1f s; dropping what was left",
                ", ".join(late),
                timeout,
            )
            drops.add("shutdown_timeout")


def _scrape_endpoint(
    registry: CollectorRegistry, settings: PacaOtelSettings
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint serving ``registry`` at an exact path (a mount would redirect).

    A scrape runs every metric callback (psutil included), so it runs in a worker thread.
    With ``metrics_auth`` it wants ``Authorization: Bearer <token>`` of any role (401, or 429
    after too many failures from one address); Prometheus sends it with
    ``authorization: {credentials: <token>}`` in its scrape config.
    """
    from prometheus_client.exposition import choose_encoder
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import Response

    guard = None
    if settings.metrics_auth:
        from paca_otel.security import (
            Authenticator,
            FailedAuthLimiter,
            TokenRegistry,
            parse_api_tokens,
        )

        limiter = FailedAuthLimiter(
            limit=settings.auth_failure_limit, window=settings.auth_failure_window
        )
        guard = Authenticator(TokenRegistry(parse_api_tokens(settings.api_tokens)), limiter)

    async def scrape(request: Request) -> Response:
        if guard is not None:
            client = request.client.host if request.client is not None else "unknown"
            result = guard.authenticate(request.headers.get("authorization"), client)
            if not result.ok:
                headers = {"WWW-Authenticate": 'Bearer realm="metrics"'}
                if result.retry_after:
                    headers = {"Retry-After": str(int(result.retry_after) + 1)}
                return Response("unauthorized\n", status_code=result.outcome.status,
                                media_type="text/plain", headers=headers)  # fmt: skip
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=content_type)

    return scrape


def _run_bounded(steps: Sequence[tuple[str, Callable[[], object]]], deadline: float) -> list[str]:
    """Run ``steps`` in parallel daemon threads; return the names still running at ``deadline``."""
    workers = [
        (name, threading.Thread(target=step, name=f"paca-otel-{name}", daemon=True))
        for name, step in steps
    ]
    for _, worker in workers:
        worker.start()
    late = []
    for name, worker in workers:
        worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            late.append(name)
    return late


def get_telemetry() -> Telemetry | None:
    """The live handle of this process, if ``configure`` was called and not shut down."""
    return _current


def configure(
    settings: PacaOtelSettings | None = None,
    *,
    app: FastAPI | None = None,
    metric_readers: Sequence[MetricReader] = (),
    span_processors: Sequence[SpanProcessor] = (),
    set_global: bool = True,
    system_source: SystemSource | None = None,
    **overrides: Any,
) -> Telemetry:
    """Set up traces, metrics and logs for this process in one call.

    Args:
        settings: a complete settings object; otherwise built from ``overrides`` and the
            environment with the precedence argument > ``PACA_OTEL_*`` > ``OTEL_*`` > default.
        app: a FastAPI app to instrument and mount ``/metrics`` on (no standalone server then).
        metric_readers: extra readers to attach (e.g. an ``InMemoryMetricReader`` in tests).
        span_processors: extra span processors.
        set_global: install the providers as the OpenTelemetry globals.
        system_source: where the system gauges read from (psutil by default; a
            ``StaticSource`` in tests).
        **overrides: any :class:`~paca_otel.config.PacaOtelSettings` field by name.

    Raises:
        ConfigError: a setting is invalid; the message names it, the value and what is allowed.
    """
    global _current  # noqa: PLW0603  # the process-wide handle is the point of configure()
    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = load_settings(**{**settings.model_dump(exclude_unset=True), **overrides})
    with _lock:
        # An independent handle (set_global=False) leaves the global one alone.
        current = _current if set_global else None
        if current is not None and not current.is_shutdown:
            unchanged = not (metric_readers or span_processors or system_source)
            if current.settings == settings and unchanged:
                if app is not None:
                    current.instrument_app(app)
                return current
            logger.info("paca-otel: configure() called with new settings; replacing providers")
            current.shutdown()
        if set_global:  # process-wide defaults, like the global providers
            from paca_otel.signals.labels import set_label_scrubber, set_label_value_max_length

            set_label_value_max_length(settings.label_value_max_length)
            scrubber = build_scrubber(settings)
            set_label_scrubber(scrubber.scrub_labels if scrubber is not None else None)
        telemetry = _build(
            settings, app, metric_readers, span_processors, set_global, system_source
        )
        if set_global:
            _current = telemetry
        return telemetry


def _build(  # noqa: PLR0917  # private; mirrors configure()'s parameters one to one
    settings: PacaOtelSettings,
    app: FastAPI | None,
    metric_readers: Sequence[MetricReader],
    span_processors: Sequence[SpanProcessor],
    set_global: bool,
    system_source: SystemSource | None,
) -> Telemetry:
    from paca_otel.pipeline import shared_store
    from paca_otel.pipeline.pipeline import Pipeline

    resource = _resource(settings)
    store = shared_store(
        max_series=settings.max_series,
        max_points=settings.max_points,
        max_window=settings.max_window,
    )
    pipeline = Pipeline(store=store)

    scrubber = build_scrubber(settings)
    tracer_provider = _tracer_provider(settings, resource, pipeline, scrubber, span_processors)
    collection = pipeline.reader
    readers, registry, metric_export = _metric_consumers(settings, collection, metric_readers)
    views = []
    if settings.system_metrics and not settings.sdk_disabled:
        from paca_otel.signals.system import system_views

        views = system_views()
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=views,
        shutdown_on_exit=False,
        exemplar_filter=_exemplar_filter(settings),
    )

    logger_provider = _logger_provider(settings, resource, scrubber)

    if set_global and not settings.sdk_disabled:
        _set_globals(tracer_provider, meter_provider, logger_provider)

    telemetry = Telemetry(
        settings=settings,
        resource=resource,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        collection=collection,
        pipeline=pipeline,
        metric_export=metric_export,
        prometheus_registry=registry,
    )
    if settings.system_metrics and not settings.sdk_disabled:
        from paca_otel.signals.system import SystemMetrics
        from paca_otel.signals.system_source import PsutilSource

        telemetry.system = SystemMetrics(
            meter_provider,
            source=system_source or PsutilSource(disk_exclude=settings.system_metrics_disk_exclude),
            per_cpu=settings.system_metrics_per_cpu,
            connections=settings.system_metrics_connections,
        )
    # An explicit OTEL_LOGS_EXPORTER/logs_exporter naming a real exporter means "send my logs":
    # the bridge is installed for it alone; logs=True adds the JSON stderr lines.
    bridge = bool(settings.exporters("logs")) and (settings.logs or bool(settings.logs_exporter))
    if settings.logs or bridge:
        from paca_otel.signals.logs import install_logging

        telemetry.logging_handles = install_logging(
            logger_provider=logger_provider if bridge else None,
            service_name=settings.service_name,
            level=logging.getLevelName(settings.log_level),
            json_to_stderr=settings.logs,
            log_filter=_log_filter(scrubber),
        )
    redactor.register(settings)
    if metric_export is not None:
        metric_export.start()
    collect_every = None
    if settings.history_enabled:
        from paca_otel.analysis.history import HistoryStore

        telemetry.history = HistoryStore.from_settings(settings)
        pipeline.on_tick("history", telemetry.history.record_metrics_data)
        telemetry.history.start()
        collect_every = settings.history_interval
    pipeline.start_draining(collect_every=collect_every)
    if settings.multiprocess_dir is not None:  # /metrics, alerting, snapshots: every worker
        from paca_otel.pipeline.multiprocess import MultiprocessMetrics

        shared = MultiprocessMetrics(pipeline, settings.multiprocess_dir)
        if shared.start():
            telemetry.add_shutdown_hook(shared.close)
    if registry is not None and app is None:
        telemetry._prometheus_server = _start_prometheus(settings, registry)
    if app is not None:
        telemetry.instrument_app(app)
    _probe_collectors(settings)
    atexit.register(telemetry.shutdown)
    return telemetry


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
    provider.add_span_processor(pipeline.span_processor)
    for exporter in _span_exporters(settings):
        if scrubber is not None:  # scrubbed on the export thread, off the request path
            from paca_otel.privacy import ScrubbingSpanExporter

            provider.add_span_processor(
                CountingSpanProcessor(ScrubbingSpanExporter(exporter, scrubber))
            )
        else:
            provider.add_span_processor(CountingSpanProcessor(exporter))
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


def _resource(settings: PacaOtelSettings) -> Resource:
    attributes: dict[str, str] = {
        "service.instance.id": _INSTANCE_ID,
        "telemetry.distro.name": "paca-otel",
        "telemetry.distro.version": __version__,
    }
    attributes.update(settings.resource_attributes)
    attributes["service.name"] = settings.service_name
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME; ours win because
    # they already applied the PACA_OTEL_* > OTEL_* precedence.
    return Resource.create(attributes)


def _entry_point(group: str, name: str) -> Any:
    """Load the object an installed package registers as ``name`` in ``group`` (public API)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=group, name=name):
        return ep.load()
    msg = f"no {group} entry point named {name!r} is installed"
    raise ConfigError(msg)


def _sampler(settings: PacaOtelSettings) -> sampling.Sampler:
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    name = settings.traces_sampler
    if name not in _BUILTIN_SAMPLERS:
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


_BUILTIN_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)


def _otlp_kwargs(
    settings: PacaOtelSettings, signal: Signal, protocol: str | None = None
) -> dict[str, Any]:
    """Constructor arguments of an OTLP exporter: every per-signal setting before the generic."""
    protocol = protocol or settings.otlp_protocol_for(signal)
    kwargs: dict[str, Any] = {
        "endpoint": settings.otlp_endpoint_for(signal),
        "headers": settings.otlp_headers_for(signal),
        "timeout": settings.otlp_timeout_for(signal) / 1000,  # the exporters take seconds
    }
    gzip = settings.otlp_compression_for(signal) == "gzip"
    certificate = settings.otlp_certificate_for(signal)
    if protocol == "grpc":
        import grpc

        kwargs["compression"] = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        insecure = settings.otlp_insecure_for(signal)
        if insecure is None:
            insecure = kwargs["endpoint"].startswith("http://")
        kwargs["insecure"] = insecure
        if certificate is not None and not insecure:
            kwargs["credentials"] = grpc.ssl_channel_credentials(certificate.read_bytes())
    else:
        from opentelemetry.exporter.otlp.proto.http import Compression

        kwargs["compression"] = Compression.Gzip if gzip else Compression.NoCompression
        if certificate is not None:
            kwargs["certificate_file"] = str(certificate)
    return kwargs


#: Exporter classes per signal and kind, imported only when chosen (gRPC pulls in grpcio).
_EXPORTER_CLASSES: dict[str, dict[str, str]] = {
    "traces": {
        "console": "opentelemetry.sdk.trace.export:ConsoleSpanExporter",
        "grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter:OTLPSpanExporter",
        "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter",
    },
    "metrics": {
        "console": "opentelemetry.sdk.metrics.export:ConsoleMetricExporter",
        "grpc": "opentelemetry.exporter.otlp.proto.grpc.metric_exporter:OTLPMetricExporter",
        "http/protobuf": "opentelemetry.exporter.otlp.proto.http.metric_exporter:"
        "OTLPMetricExporter",
    },
    "logs": {
        "console": "opentelemetry.sdk._logs.export:ConsoleLogRecordExporter",
        "grpc": "opentelemetry.exporter.otlp.proto.grpc._log_exporter:OTLPLogExporter",
        "http/protobuf": "opentelemetry.exporter.otlp.proto.http._log_exporter:OTLPLogExporter",
    },
}


def _exporters(settings: PacaOtelSettings, signal: Signal) -> list[Any]:
    """The push exporters chosen for ``signal`` (Prometheus is a pull reader, built apart)."""
    import importlib

    exporters: list[Any] = []
    for name in settings.exporters(signal):
        if name == "prometheus":
            continue
        kind = _OTLP_KINDS.get(name)
        if kind is None:
            # Any other exporter an installed package provides through the SDK's entry
            # points (zipkin, ...); like the SDK's auto-configuration, built without arguments.
            factory = _entry_point(f"opentelemetry_{signal}_exporter", name)
            if (
                signal == "metrics"
                and isinstance(factory, type)
                and issubclass(factory, MetricExporter)
            ):
                factory = counting_metric_exporter(factory)
            exporters.append(factory())
            continue
        protocol = kind or settings.otlp_protocol_for(signal)
        module, _, cls = _EXPORTER_CLASSES[signal][protocol].partition(":")
        factory = getattr(importlib.import_module(module), cls)
        if signal == "metrics":
            factory = counting_metric_exporter(factory)
        kwargs = {} if protocol == "console" else _otlp_kwargs(settings, signal, protocol)
        exporters.append(factory(**kwargs))
    return exporters


#: Built-in exporter names and the protocol they force ("" = the configured OTLP protocol).
_OTLP_KINDS = {
    "otlp": "",
    "otlp_proto_grpc": "grpc",
    "otlp_proto_http": "http/protobuf",
    "console": "console",
}


def _span_exporters(settings: PacaOtelSettings) -> list[SpanExporter]:
    return _exporters(settings, "traces")


def _metric_exporters(settings: PacaOtelSettings) -> list[MetricExporter]:
    return _exporters(settings, "metrics")


def _log_exporters(settings: PacaOtelSettings) -> list[LogRecordExporter]:
    return _exporters(settings, "logs")


def _start_prometheus(
    settings: PacaOtelSettings, registry: CollectorRegistry
) -> tuple[WSGIServer, threading.Thread] | None:
    from prometheus_client import start_http_server

    try:
        return start_http_server(
            settings.prometheus_port, addr=settings.prometheus_host, registry=registry
        )
    except OSError as exc:
        # A busy port must not stop the application from starting (principle 4).
        logger.warning(
            "paca-otel: cannot serve Prometheus metrics on %s:%s (%s); scrape endpoint disabled",
            settings.prometheus_host,
            settings.prometheus_port,
            exc,
        )
        return None


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
    drops.reset()  # the self-metric's counter belonged to the previous provider
    from paca_otel.signals.metrics import rebind_global_collectors

    rebind_global_collectors()


# --- collector reachability -------------------------------------------------------------------

_OTLP_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.common",
    "opentelemetry.exporter.http.transport",
)


class _ExportFailureFilter(logging.Filter):
    """Lets one OTLP export-failure record through per quiet period; counts the rest.

    The SDK exporters log every failed attempt; with a collector down that is a warning every
    few seconds per signal, which buries the application's own logs. While the start-up probe
    runs, exporter records are held back so the one warning is the probe's, which names the
    endpoint and says what happens next.
    """

    def __init__(self, quiet_seconds: float = 300.0) -> None:
        super().__init__()
        self.quiet_seconds = quiet_seconds
        self.last_emitted = float("-inf")
        self.probing = False
        self._lock = threading.Lock()

    def rearm(self, *, probing: bool) -> None:
        """A new configuration may point at a new collector: its first failure is news."""
        with self._lock:
            self.last_emitted = float("-inf")
            self.probing = probing

    def probe_done(self, *, warned: bool) -> None:
        with self._lock:
            self.probing = False
            if warned:
                self.last_emitted = time.monotonic()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            now = time.monotonic()
            if self.probing or now - self.last_emitted < self.quiet_seconds:
                drops.add("export_failure_log")
                return False
            self.last_emitted = now
            return True


_export_filter = _ExportFailureFilter()
for _name in _OTLP_LOGGERS:
    logging.getLogger(_name).addFilter(_export_filter)
    logging.getLogger(_name).addFilter(redactor)  # failures name the endpoint URL


def _probe_collectors(settings: PacaOtelSettings) -> None:
    """Check in the background that the OTLP endpoints accept connections; warn once if not."""
    targets: dict[tuple[str, int], list[str]] = {}
    signals: tuple[Signal, ...] = ("traces", "metrics", "logs")
    for signal in signals:
        if not {"otlp", "otlp_proto_grpc", "otlp_proto_http"} & set(settings.exporters(signal)):
            continue
        parts = split_endpoint(settings.otlp_endpoint_for(signal))
        host = parts.hostname or "localhost"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        targets.setdefault((host, port), []).append(signal)
    _export_filter.rearm(probing=bool(targets))
    if not targets:
        return

    def probe() -> None:
        down: list[str] = []
        for (host, port), names in targets.items():
            try:
                socket.create_connection((host, port), timeout=2).close()
            except OSError as exc:
                down.append(f"{host}:{port} ({exc}; {', '.join(names)})")
        if down:
            logger.warning(
                "paca-otel: OTLP collector unreachable at %s; the app keeps running, and "
                "telemetry is retried, then dropped and counted, until it is back",
                "; ".join(down),
            )
        _export_filter.probe_done(warned=bool(down))

    threading.Thread(target=probe, name="paca-otel-probe", daemon=True).start()
