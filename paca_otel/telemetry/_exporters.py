"""The exporter plan and factory: which push exporters each signal gets, and how each is built.

Built-in names (``otlp``, ``otlp_proto_grpc``, ``otlp_proto_http``, ``console``) are imported
only when chosen, so a process without OTLP never loads grpcio; any other name is looked up
among the SDK's ``opentelemetry_<signal>_exporter`` entry points. Every OTLP setting is read
per signal first, then generically (the OTel spec's order).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

from paca_otel.config import PacaOtelSettings, Signal
from paca_otel.errors import ConfigError
from paca_otel.signals._dropcount import counting_metric_exporter


def _entry_point(group: str, name: str) -> Any:
    """Load the object an installed package registers as ``name`` in ``group`` (public API)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=group, name=name):
        return ep.load()
    msg = f"no {group} entry point named {name!r} is installed"
    raise ConfigError(msg)


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
