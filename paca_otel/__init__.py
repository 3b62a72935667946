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
    from paca_otel._manager import AlertManager, MonitoringManager
    from paca_otel._setup import Telemetry, configure, get_telemetry
    from paca_otel._snapshot import MetricPoint, MetricsSnapshot
    from paca_otel.alerting._engine import ActiveAlert
    from paca_otel.config import PacaOtelSettings
    from paca_otel.delivery.channels import NotificationChannel
    from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity
    from paca_otel.rules._rule import Rule, load_rules
    from paca_otel.signals._logs import JsonFormatter, install_logging
    from paca_otel.signals._metrics import MetricKind, MetricsCollector
    from paca_otel.signals._system import SystemMetrics
    from paca_otel.signals._tracing import span, traced
    from paca_otel.signals.http_server import instrument_fastapi

# Public name -> the module that defines it. Imported on first use (PEP 562), so that
# ``import paca_otel`` stays cheap: a process that only records metrics never loads the
# alerting channels, PromQL export or YAML.
_LAZY: dict[str, str] = {
    "NotificationChannel": "paca_otel.delivery.channels",
    "ActiveAlert": "paca_otel.alerting._engine",
    "AlertManager": "paca_otel._manager",
    "AlertEvent": "paca_otel.rules._models",
    "AlertState": "paca_otel.rules._models",
    "Notification": "paca_otel.rules._models",
    "Severity": "paca_otel.rules._models",
    "Rule": "paca_otel.rules._rule",
    "load_rules": "paca_otel.rules._rule",
    "PacaOtelSettings": "paca_otel.config",
    "MonitoringManager": "paca_otel._manager",
    "Telemetry": "paca_otel._setup",
    "configure": "paca_otel._setup",
    "get_telemetry": "paca_otel._setup",
    "JsonFormatter": "paca_otel.signals._logs",
    "install_logging": "paca_otel.signals._logs",
    "MetricKind": "paca_otel.signals._metrics",
    "MetricsCollector": "paca_otel.signals._metrics",
    "SystemMetrics": "paca_otel.signals._system",
    "span": "paca_otel.signals._tracing",
    "traced": "paca_otel.signals._tracing",
    "MetricPoint": "paca_otel._snapshot",
    "MetricsSnapshot": "paca_otel._snapshot",
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
