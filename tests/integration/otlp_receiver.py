"""An in-memory OTLP/gRPC receiver: the far end of the collector in integration tests.

Tests export through a real collector (rotel) and need to see what came out of it. This module
is that sink: a grpcio server on 127.0.0.1 implementing the three OTLP collector services, which
keeps every Export request in memory and answers each with an empty (fully accepted) response.
Accessors are thread-safe because gRPC handlers run on the server's worker threads while the
test thread reads; ``wait_for`` polls with a bound so a lost signal fails a test instead of
hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value_to_python(value: AnyValue) -> object:
    """Turn an OTLP ``AnyValue`` into a plain Python value, so tests compare with literals."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_to_dict(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_to_dict(attributes: Any) -> dict[str, object]:
    """Turn a repeated OTLP ``KeyValue`` field into a dict."""
    pairs: list[KeyValue] = list(attributes)
    return {pair.key: any_value_to_python(pair.value) for pair in pairs}


class OtlpReceiver:
    """Records OTLP Export requests for traces, metrics and logs.

    Start it with :meth:`start` (binds a free port on 127.0.0.1, chosen by the OS so there is no
    port race) and stop it with :meth:`stop`; ``endpoint`` is ``127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self._logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self._server: Any = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OtlpReceiver:
        """Start serving on a free 127.0.0.1 port; returns self for chaining."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        registrations: list[tuple[Callable[[Any, Any], None], object]] = [
            (trace_service_pb2_grpc.add_TraceServiceServicer_to_server, _TraceService(self)),
            (metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server, _MetricsService(self)),
            (logs_service_pb2_grpc.add_LogsServiceServicer_to_server, _LogsService(self)),
        ]
        for register, servicer in registrations:
            register(servicer, server)
        self.port = int(server.add_insecure_port("127.0.0.1:0"))
        server.start()
        self._server = server
        return self

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving, waiting at most ``grace`` seconds for in-flight requests."""
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1.0)
            self._server = None

    @property
    def endpoint(self) -> str:
        """``host:port`` to give an OTLP/gRPC exporter (a collector's exporter endpoint)."""
        return f"127.0.0.1:{self.port}"

    # -- recording (called on gRPC worker threads) -----------------------------------------

    def _record(self, bucket: list[Any], request: Any) -> None:
        with self._changed:
            bucket.append(request)
            self._changed.notify_all()

    # -- accessors (test thread) -----------------------------------------------------------

    def trace_requests(self) -> list[trace_service_pb2.ExportTraceServiceRequest]:
        """Every trace Export request received so far, oldest first."""
        with self._lock:
            return list(self._traces)

    def metric_requests(self) -> list[metrics_service_pb2.ExportMetricsServiceRequest]:
        """Every metrics Export request received so far, oldest first."""
        with self._lock:
            return list(self._metrics)

    def log_requests(self) -> list[logs_service_pb2.ExportLogsServiceRequest]:
        """Every logs Export request received so far, oldest first."""
        with self._lock:
            return list(self._logs)

    def spans(self) -> list[Span]:
        """All spans received, flattened across requests, resources and scopes."""
        return [
            span
            for request in self.trace_requests()
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def span_names(self) -> list[str]:
        """Names of all spans received."""
        return [span.name for span in self.spans()]

    def metric_names(self) -> set[str]:
        """Names of all metrics received (OTel names, dots kept)."""
        return {
            metric.name
            for request in self.metric_requests()
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }

    def log_records(self) -> list[LogRecord]:
        """All log records received, flattened across requests, resources and scopes."""
        return [
            record
            for request in self.log_requests()
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def log_bodies(self) -> list[object]:
        """Bodies of all log records received, as plain Python values."""
        return [any_value_to_python(record.body) for record in self.log_records()]

    def service_names(self) -> set[str]:
        """``service.name`` resource attributes seen on any signal."""
        resources = [rs.resource for r in self.trace_requests() for rs in r.resource_spans]
        resources += [rm.resource for r in self.metric_requests() for rm in r.resource_metrics]
        resources += [rl.resource for r in self.log_requests() for rl in r.resource_logs]
        return {
            str(attributes_to_dict(resource.attributes).get("service.name"))
            for resource in resources
        }

    def wait_for(self, predicate: Callable[[OtlpReceiver], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds or ``timeout`` seconds pass; return whether it held.

        Woken by every received request, so it returns as soon as the data is there, and
        re-checked at least every 0.2 s in case the predicate depends on something else.
        """
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.2))

    def summary(self) -> str:
        """One line describing what arrived, for assertion messages."""
        return (
            f"spans={self.span_names()} metrics={sorted(self.metric_names())} "
            f"logs={self.log_bodies()} services={sorted(self.service_names())}"
        )


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # the gRPC method name is fixed by the proto
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._receiver._record(self._receiver._traces, request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # the gRPC method name is fixed by the proto
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: object
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._receiver._record(self._receiver._metrics, request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    def Export(  # the gRPC method name is fixed by the proto
        self, request: logs_service_pb2.ExportLogsServiceRequest, context: object
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        self._receiver._record(self._receiver._logs, request)
        return logs_service_pb2.ExportLogsServiceResponse()
