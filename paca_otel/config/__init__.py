"""Settings: one pydantic-settings model; precedence argument > PACA_OTEL_* > OTEL_* > default.

Every field can be given to ``configure(...)`` by name, or set through ``PACA_OTEL_<NAME>``; the
fields that OpenTelemetry standardises also read their ``OTEL_*`` variable, so a service already
set up for the OTel SDK keeps working. The README's configuration table is generated from
:func:`settings_table` so the two cannot drift apart.

The model stays flat, but each concern declares its fields and validators in its own option
group, and :class:`PacaOtelSettings` inherits them all:

- ``_telemetry``: resource, exporters, OTLP (generic and per signal), sampling;
- ``_signals``: log handlers, system gauges, metric label values, shutdown budget;
- ``_alerting``: evaluation interval, the series store's bounds, alert state, channels,
  the rule file and the workers' shared directory;
- ``_storage``: the encryption key of everything stored;
- ``_privacy``: the scrubber;
- ``_analysis``: the metric history and scheduled reports;
- ``_web``: monitoring API and dashboard access control;
- ``_source``: how variables are read (:class:`~paca_otel.config._source._PrefixedEnvSource`);
- ``_settings``: the combined model, :func:`load_settings` and the README table.
"""

from __future__ import annotations

from paca_otel.config._alerting import EVALUATION_INTERVAL_RANGE, evaluation_interval_problem
from paca_otel.config._settings import (
    SECRET_FIELDS,
    PacaOtelSettings,
    env_names,
    env_source,
    load_settings,
    mask_url,
    settings_table,
    settings_table_by_group,
)
from paca_otel.config._telemetry import (
    ExporterName,
    Protocol,
    Signal,
    allowed_exporters,
    allowed_samplers,
    split_endpoint,
)

__all__ = [
    "EVALUATION_INTERVAL_RANGE",
    "SECRET_FIELDS",
    "ExporterName",
    "PacaOtelSettings",
    "Protocol",
    "Signal",
    "allowed_exporters",
    "allowed_samplers",
    "env_names",
    "env_source",
    "evaluation_interval_problem",
    "load_settings",
    "mask_url",
    "settings_table",
    "settings_table_by_group",
    "split_endpoint",
]
