"""paca-otel: one-call OpenTelemetry monitoring for Python services.

``configure()`` gives a process traces, metrics, logs and system gauges; ``MonitoringManager``,
``MetricsCollector`` and ``AlertManager`` are the seed's async-friendly facade over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paca_otel._version import __version__
from paca_otel.errors import (
    ChannelError,
    ConfigError,
    InstrumentKindConflictError,
    InvalidMetricNameError,
    MetricError,
    PacaOtelError,
    ParseError,
    RuleError,
    StorageError,
)

if TYPE_CHECKING:
    from paca_otel.alerting.channels import NotificationChannel
    from paca_otel.alerting.engine import ActiveAlert
    from paca_otel.alerting.models import AlertEvent, AlertState, Notification, Severity
    from paca_otel.alerting.rules import Rule, load_rules
    from paca_otel.config import PacaOtelSettings
    from paca_otel.manager import AlertManager, MonitoringManager
    from paca_otel.setup import Telemetry, configure, get_telemetry
    from paca_otel.signals.http_server import instrument_fastapi
    from paca_otel.signals.logs import JsonFormatter, install_logging
    from paca_otel.signals.metrics import MetricKind, MetricsCollector
    from paca_otel.signals.system import SystemMetrics
    from paca_otel.signals.tracing import span, traced
    from paca_otel.snapshot import MetricPoint, MetricsSnapshot

# Public name -> the module that defines it. Imported on first use (PEP 562), so that
# ``import paca_otel`` stays cheap: a process that only records metrics never loads the
# alerting channels, PromQL export or YAML.
_LAZY: dict[str, str] = {
    "NotificationChannel": "paca_otel.alerting.channels",
    "ActiveAlert": "paca_otel.alerting.engine",
    "AlertManager": "paca_otel.manager",
    "AlertEvent": "paca_otel.alerting.models",
    "AlertState": "paca_otel.alerting.models",
    "Notification": "paca_otel.alerting.models",
    "Severity": "paca_otel.alerting.models",
    "Rule": "paca_otel.alerting.rules",
    "load_rules": "paca_otel.alerting.rules",
    "PacaOtelSettings": "paca_otel.config",
    "MonitoringManager": "paca_otel.manager",
    "Telemetry": "paca_otel.setup",
    "configure": "paca_otel.setup",
    "get_telemetry": "paca_otel.setup",
    "JsonFormatter": "paca_otel.signals.logs",
    "install_logging": "paca_otel.signals.logs",
    "MetricKind": "paca_otel.signals.metrics",
    "MetricsCollector": "paca_otel.signals.metrics",
    "SystemMetrics": "paca_otel.signals.system",
    "span": "paca_otel.signals.tracing",
    "traced": "paca_otel.signals.tracing",
    "MetricPoint": "paca_otel.snapshot",
    "MetricsSnapshot": "paca_otel.snapshot",
    "instrument_fastapi": "paca_otel.signals.http_server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'paca_otel' has no attribute {name!r}"
        raise AttributeError(msg)
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "StorageError",
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
