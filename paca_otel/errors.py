"""The exception tree of paca-otel.

Set-up and control calls (``configure``, ``add_rule``, API payloads, the CLI) fail fast with a
:class:`PacaOtelError`. Every concrete error is also a :class:`ValueError` where the cause is a
bad value, so callers who already catch ``ValueError`` keep working::

    PacaOtelError
    ├── ConfigError (ValueError)            a setting has a value that is not allowed
    ├── MetricError (ValueError)
    │   ├── InvalidMetricNameError          the name breaks OpenTelemetry's instrument-name rules
    │   └── InstrumentKindConflictError     one name was used with two instrument kinds
    ├── RuleError (ValueError)              an alert rule is invalid
    │   └── ParseError                      its condition does not parse (position + expectation)
    ├── ChannelError                        a notification channel is misconfigured or failed
    └── StorageError (ConfigError)          the state file (named) cannot be opened or used

Record, callback, processor and export paths never raise these into the host application:
they log once, drop, and count the drop in a self-metric.
"""

from __future__ import annotations

__all__ = [
    "ChannelError",
    "ConfigError",
    "InstrumentKindConflictError",
    "InvalidMetricNameError",
    "MetricError",
    "PacaOtelError",
    "ParseError",
    "RuleError",
    "StorageError",
]


class PacaOtelError(Exception):
    """Base of every error paca-otel raises on purpose."""


class ConfigError(PacaOtelError, ValueError):
    """A setting has a value that is not allowed; the message names setting, value and choices."""


class MetricError(PacaOtelError, ValueError):
    """A metric call was made with arguments that can never be recorded."""


class InvalidMetricNameError(MetricError):
    """The instrument name breaks the OpenTelemetry naming rules."""


class InstrumentKindConflictError(MetricError):
    """One metric name was first used as one kind of instrument and then as another."""


class RuleError(PacaOtelError, ValueError):
    """An alert rule is invalid (bad field, unknown channel, bad duration...)."""


class ParseError(RuleError):
    """A rule condition does not parse.

    Carries where it went wrong so editors and the API can point at it.
    """

    def __init__(self, message: str, *, text: str = "", position: int = 0) -> None:
        self.text = text
        self.position = position
        self.column = position + 1
        super().__init__(message)


class ChannelError(PacaOtelError):
    """A notification channel is misconfigured, or a delivery attempt failed."""


class StorageError(ConfigError):
    """The SQLite file at a path cannot be opened, read or written; the message names the path.

    A :class:`ConfigError` because the fix is a setting (``state_path``, ``storage_key``):
    set-up calls raise it; running loops count it and keep alert state in memory.
    """
