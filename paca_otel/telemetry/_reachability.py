"""Collector reachability: a start-up probe of the OTLP endpoints, and one warning per outage.

Importing this module installs :class:`_ExportFailureFilter` (and the URL redactor) on the OTLP
exporters' loggers, once per process.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from paca_otel._internal import drops
from paca_otel.config import PacaOtelSettings, Signal, split_endpoint
from paca_otel.signals._redact import redactor

logger = logging.getLogger("paca_otel")

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
