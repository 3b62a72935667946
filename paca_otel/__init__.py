"""paca-otel: one-call OpenTelemetry monitoring for Python services.

``configure()`` gives a process traces, metrics, logs and system gauges; ``MonitoringManager``,
``MetricsCollector`` and ``AlertManager`` are the seed's async-friendly facade over it.
"""

from __future__ import annotations

from paca_otel._version import __version__
from paca_otel.alerting.channels import NotificationChannel
from paca_otel.alerting.engine import ActiveAlert
from paca_otel.alerting.manager import AlertManager
from paca_otel.alerting.models import AlertEvent, AlertState, Notification, Severity
from paca_otel.alerting.rules import Rule, load_rules
from paca_otel.config import PacaOtelSettings
from paca_otel.errors import (
    ChannelError,
    ConfigError,
    InstrumentKindConflictError,
    InvalidMetricNameError,
    MetricError,
    PacaOtelError,
    ParseError,
    RuleError,
)
from paca_otel.manager import MonitoringManager
from paca_otel.setup import Telemetry, configure, get_telemetry
from paca_otel.signals.logs import JsonFormatter, install_logging
from paca_otel.signals.metrics import MetricKind, MetricsCollector
from paca_otel.signals.system import SystemMetrics
from paca_otel.signals.tracing import span, traced
from paca_otel.snapshot import MetricPoint, MetricsSnapshot
from paca_otel.web.middleware import instrument_fastapi

__all__ = [
    "ActiveAlert",
    "AlertEvent",
    "AlertManager",
    "AlertState",
    "ChannelError",
    "ConfigError",
    "InstrumentKindConflictError",
    "InvalidMetricNameError",
    "JsonFormatter",
    "MetricError",
    "MetricKind",
    "MetricPoint",
    "MetricsCollector",
    "MetricsSnapshot",
    "MonitoringManager",
    "Notification",
    "NotificationChannel",
    "PacaOtelError",
    "PacaOtelSettings",
    "ParseError",
    "Rule",
    "RuleError",
    "Severity",
    "SystemMetrics",
    "Telemetry",
    "__version__",
    "configure",
    "get_telemetry",
    "install_logging",
    "instrument_fastapi",
    "load_rules",
    "span",
    "traced",
]
