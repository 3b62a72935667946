"""configure()/shutdown(): the providers, resource and exporters of one process.

One call builds a TracerProvider, MeterProvider and LoggerProvider from the settings, installs
them as the OpenTelemetry globals and returns a :class:`Telemetry` handle that owns them. Calling
``configure`` again with the same settings returns the same handle; with other settings it shuts
the old providers down first, so there are never duplicate providers, readers or servers.

Each handle belongs to a composition root (:class:`paca_otel._runtime.Runtime`): the default one
when ``set_global``, else a new independent root. The handle is built on its root's series
store, and the root keeps the live handle: the only module state here is the weak set of
live handles that a forked child rebuilds (see :mod:`paca_otel._prefork`), and the roots a
fork in progress holds.

This module is the facade: the handle, ``configure`` and the order things are built and
stopped in. The pieces (resource, exporter plan, providers, the Prometheus exposition,
collector reachability) are the private modules of :mod:`paca_otel.telemetry`.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from prometheus_client import CollectorRegistry

from paca_otel import _prefork, _workers
from paca_otel._internal import drops, handle_internal_errors
from paca_otel.config import PacaOtelSettings, load_settings
from paca_otel.privacy import build_scrubber
from paca_otel.signals._redact import redactor

# Imported before _after_fork_in_child is registered, so that in a forked child the storage
# layer forgets the parent's SQLite connections before the rebuild opens its own.
from paca_otel.storage import _sqlite as _sqlite_fork_hook  # noqa: F401
from paca_otel.telemetry import _resource as _resource_module
from paca_otel.telemetry._providers import (
    _exemplar_filter,
    _log_filter,
    _logger_provider,
    _metric_consumers,
    _set_globals,
    _tracer_provider,
)
from paca_otel.telemetry._reachability import _probe_collectors
from paca_otel.telemetry._resource import _resource
from paca_otel.telemetry._scrape import _scrape_endpoint, _start_prometheus

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from fastapi import FastAPI

    from paca_otel._runtime import Runtime
    from paca_otel.analysis.history import HistoryStore
    from paca_otel.pipeline._collection import Collection
    from paca_otel.pipeline._export import PeriodicExport
    from paca_otel.pipeline._pipeline import Pipeline
    from paca_otel.signals._logs import LoggingHandles
    from paca_otel.signals._system import SystemMetrics
    from paca_otel.signals._system_source import SystemSource

logger = logging.getLogger("paca_otel")

_lock = threading.RLock()
_handles: weakref.WeakSet[Telemetry] = weakref.WeakSet()  # rebuilt in a forked child
_forking: list[Runtime] = []  # the roots whose locks a fork in progress holds


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
    runtime: Runtime
    prometheus_registry: CollectorRegistry | None = None
    metric_export: PeriodicExport | None = None
    system: SystemMetrics | None = None
    history: HistoryStore | None = None
    logging_handles: LoggingHandles | None = None
    _prometheus_server: tuple[WSGIServer, threading.Thread] | None = None
    _apps: list[Any] = field(default_factory=list)
    _shutdown_hooks: list[Callable[[], object]] = field(default_factory=list)
    _is_shutdown: bool = False
    _origin: _prefork.Origin = field(default_factory=_prefork.Origin)
    _fork_hooks: dict[str, Callable[[Telemetry], object]] = field(default_factory=dict)

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
            app,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            gc_freeze=self.settings.gc_freeze,
        )
        if metrics_path and self.prometheus_registry is not None:
            # The route reads the handle's registry per scrape: a forked child rebuilds it.
            endpoint = _scrape_endpoint(lambda: self.prometheus_registry, self.settings)
            app.add_route(metrics_path, endpoint, ["GET"])
        app.state.paca_otel_runtime = self.runtime  # the API's routes on ``app`` read this root
        self._apps.append(app)

    def add_shutdown_hook(self, hook: Callable[[], object]) -> None:
        """Call ``hook`` first thing in :meth:`shutdown` (the alerting runtime detaches so)."""
        self._shutdown_hooks.append(hook)

    def add_fork_hook(self, name: str, hook: Callable[[Telemetry], object]) -> None:
        """Call ``hook(self)`` in a forked child once this handle is rebuilt there.

        The alerting runtime restarts its loops so (see :mod:`paca_otel._prefork`). One hook
        per ``name``: adding it again replaces it.
        """
        self._fork_hooks[name] = hook

    def rebuild_after_fork(self, build: Callable[[Telemetry], Telemetry]) -> None:
        """Take new providers, pipeline, exporters, threads and servers in a forked child.

        ``build`` makes the parts from this handle's settings and origin without serving
        anything; the handle itself (what user code holds) stays. See :mod:`paca_otel._prefork`.
        """
        inherited_server = self._prometheus_server
        had_system = self.system is not None
        if self.logging_handles is not None:  # its handlers feed the parent's logger provider
            self.logging_handles.uninstall()
        fresh = build(self)
        for name, value in vars(fresh).items():  # a dataclass's fields, new ones of every part
            if name not in _prefork.KEPT:
                setattr(self, name, value)
        if had_system and self.system is None and not self.settings.sdk_disabled:
            # MonitoringManager.start_monitoring() added the gauges to a handle without them.
            from paca_otel.signals._system import SystemMetrics

            self.system = SystemMetrics(self.meter_provider)
        _prefork.reinstrument(
            self._apps, self.tracer_provider, self.meter_provider, gc_freeze=self.settings.gc_freeze
        )
        if inherited_server is not None:
            registry = self.prometheus_registry
            self._prometheus_server = _prefork.take_over_port(
                self.settings, registry, inherited_server
            )
        for name, hook in list(self._fork_hooks.items()):
            with handle_internal_errors(f"fork_hook.{name}", logger):
                hook(self)

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
        with _lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
        atexit.unregister(self.shutdown)
        for hook in self._shutdown_hooks:
            hook()
        self.runtime.unbind(self)
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
            if getattr(app.state, "paca_otel_runtime", None) is self.runtime:
                del app.state.paca_otel_runtime
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
    """The live handle of the default root, if ``configure`` was called and not shut down."""
    from paca_otel._runtime import default_runtime

    return _handle_of(default_runtime())


def _handle_of(root: Runtime) -> Telemetry | None:
    """The live handle bound to ``root`` (only ``configure`` binds, so it is one of ours)."""
    found = root.telemetry
    return found if isinstance(found, Telemetry) else None


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
    from paca_otel._runtime import Runtime, default_runtime

    if settings is None:
        settings = load_settings(**overrides)
    elif overrides:
        settings = load_settings(**{**settings.model_dump(exclude_unset=True), **overrides})
    with _lock:
        # An independent handle (set_global=False) gets a root of its own: the default one,
        # its store, engine and delivery are left alone.
        root = default_runtime() if set_global else Runtime(settings)
        current = _handle_of(root)
        if current is not None and not current.is_shutdown:
            unchanged = not (metric_readers or span_processors or system_source)
            if current.settings == settings and unchanged:
                if app is not None:
                    current.instrument_app(app)
                return current
            logger.info("paca-otel: configure() called with new settings; replacing providers")
            current.shutdown()
        if set_global:  # process-wide defaults, like the global providers
            from paca_otel.signals._labels import set_label_scrubber, set_label_value_max_length

            set_label_value_max_length(settings.label_value_max_length)
            scrubber = build_scrubber(settings)
            set_label_scrubber(scrubber.scrub_labels if scrubber is not None else None)
        telemetry = _build(
            settings, root, app, metric_readers, span_processors, set_global, system_source
        )
        telemetry._origin = _prefork.Origin(tuple(span_processors), system_source, set_global)
        _handles.add(telemetry)
        root.bind(telemetry)
        if set_global:
            _workers.announce(settings)
        return telemetry


def _before_fork() -> None:
    """In the parent, just before ``fork()``: each root snapshots what its child takes over.

    The roots are the default one (rules may be added before anything is configured) and
    those of the live handles; the list is kept so both sides release the same locks.
    """
    runtime = sys.modules.get("paca_otel._runtime")
    if runtime is None:  # never imported: no root exists in this process
        return
    roots: list[Runtime] = [runtime.default_runtime()]
    roots += [h.runtime for h in list(_handles) if not h.is_shutdown and h.runtime not in roots]
    for root in roots:
        root.before_fork()
        _forking.append(root)


def _after_fork_in_parent() -> None:
    for root in _forking:
        root.after_fork_in_parent()
    _forking.clear()


def _after_fork_in_child() -> None:
    """Rebuild every live handle in a forked child (gunicorn --preload); see :mod:`._prefork`.

    Each root first leaves the parent's series and alerting runtime behind, so the rebuilt
    pipeline writes into a store of this process and the alerting fork hook builds a fresh
    runtime taking over the root's snapshot.
    """
    global _lock  # noqa: PLW0603  # a lock held by another thread at fork stays held in the child
    _lock = threading.RLock()
    _resource_module.renew_instance_id()
    roots = list(_forking)
    _forking.clear()
    for root in roots:
        root.after_fork_in_child()
    default = roots[0] if roots else None
    for handle in list(_handles):
        if handle.is_shutdown:
            continue
        with handle_internal_errors("fork_rebuild", logger):
            handle.rebuild_after_fork(_rebuild_parts)
            if handle.runtime is default:
                _workers.announce(handle.settings)


def _rebuild_parts(handle: Telemetry) -> Telemetry:
    """New providers, pipeline, exporters and threads from ``handle``'s settings, not served."""
    origin = handle._origin
    span_processors, system_source = origin.span_processors, origin.system_source
    args = (handle.settings, handle.runtime, None, (), span_processors, origin.set_global)
    return _build(*args, system_source, fork_rebuild=True)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def _start_history(telemetry: Telemetry) -> float | None:
    """Open the history (``history_enabled``) and feed it at each tick; the tick's interval."""
    settings, pipeline = telemetry.settings, telemetry.pipeline
    if not settings.history_enabled:
        return None
    from paca_otel.analysis.history import HistoryStore

    every = settings.history_interval
    history = telemetry.history = HistoryStore.from_settings(settings)
    if history.shared:  # multiprocess_dir: one worker records the service's view
        service = functools.partial(pipeline.reader.collect_service, max_age=every / 2)
        pipeline.on_tick("history", lambda _, at: history.record_service(service, at))
    else:
        pipeline.on_tick("history", history.record_metrics_data)
    history.start()
    return every


def _build(  # noqa: PLR0917  # private; mirrors configure()'s parameters one to one
    settings: PacaOtelSettings,
    root: Runtime,
    app: FastAPI | None,
    metric_readers: Sequence[MetricReader],
    span_processors: Sequence[SpanProcessor],
    set_global: bool,
    system_source: SystemSource | None,
    *,
    fork_rebuild: bool = False,
) -> Telemetry:
    from paca_otel.pipeline._pipeline import Pipeline

    resource = _resource(settings)
    pipeline = Pipeline(store=root.bound_store(settings))

    scrubber = build_scrubber(settings)
    tracer_provider = _tracer_provider(settings, resource, pipeline, scrubber, span_processors)
    collection = pipeline.reader
    readers, registry, metric_export = _metric_consumers(settings, collection, metric_readers)
    views = []
    if settings.system_metrics and not settings.sdk_disabled:
        from paca_otel.signals._system import system_views

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
        runtime=root,
        metric_export=metric_export,
        prometheus_registry=registry,
    )
    if settings.system_metrics and not settings.sdk_disabled:
        from paca_otel.signals._system import SystemMetrics
        from paca_otel.signals._system_source import PsutilSource

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
        from paca_otel.signals._logs import install_logging

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
    pipeline.start_draining(collect_every=_start_history(telemetry))
    if settings.multiprocess_dir is not None:  # /metrics, alerting, snapshots: every worker
        from paca_otel.pipeline._multiprocess import MultiprocessMetrics

        shared = MultiprocessMetrics(pipeline, settings.multiprocess_dir)
        if shared.start():
            telemetry.add_shutdown_hook(shared.close)
    if fork_rebuild:  # the child keeps the handle, its apps, its atexit entry and its warnings
        return telemetry
    if registry is not None and app is None:
        telemetry._prometheus_server = _start_prometheus(settings, registry)
    if app is not None:
        telemetry.instrument_app(app)
    _probe_collectors(settings)
    atexit.register(telemetry.shutdown)
    return telemetry
