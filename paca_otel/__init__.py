"""paca-otel: one-call OpenTelemetry monitoring for Python services."""

from __future__ import annotations

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
)

__all__ = [
    "ChannelError",
    "ConfigError",
    "InstrumentKindConflictError",
    "InvalidMetricNameError",
    "MetricError",
    "PacaOtelError",
    "ParseError",
    "RuleError",
    "__version__",
]
