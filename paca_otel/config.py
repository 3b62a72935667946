"""Settings: one pydantic-settings model; precedence argument > PACA_OTEL_* > OTEL_* > default.

Every field can be given to ``configure(...)`` by name, or set through ``PACA_OTEL_<NAME>``; the
fields that OpenTelemetry standardises also read their ``OTEL_*`` variable, so a service already
set up for the OTel SDK keeps working. The README's configuration table is generated from
:func:`settings_table` so the two cannot drift apart.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from paca_otel.errors import ConfigError

ExporterName = Literal["otlp", "prometheus", "console", "none"]
Protocol = Literal["grpc", "http/protobuf"]
Signal = Literal["traces", "metrics", "logs"]

_SIGNAL_EXPORTERS: dict[str, frozenset[str]] = {
    "traces": frozenset({"otlp", "console", "none"}),
    "metrics": frozenset({"otlp", "prometheus", "console", "none"}),
    "logs": frozenset({"otlp", "console", "none"}),
}
_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
#: Settings whose values are credentials: SecretStr in the model, never shown in errors.
SECRET_FIELDS = frozenset(
    {
        "otlp_headers",
        "otlp_traces_headers",
        "otlp_metrics_headers",
        "otlp_logs_headers",
        "smtp_password",
        "webhook_url",
        "slack_webhook_url",
        "alertmanager_url",
        "api_tokens",  # hashes only, but a raw token pasted by mistake must not be echoed
    }
)
_DEFAULT_PORTS: dict[str, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318",
}


def _env(name: str, otel: str | None = None, **kwargs: Any) -> Any:
    """A field read from ``PACA_OTEL_<NAME>``, then (if given) the standard ``OTEL_*`` variable."""
    choices = [name, f"PACA_OTEL_{name.upper()}"]
    if otel:
        choices.append(otel)
    return Field(validation_alias=AliasChoices(*choices), **kwargs)


EVALUATION_INTERVAL_RANGE = (1.0, 86_400.0)
"""Seconds allowed between rule evaluations: at least 1 s, at most a day."""


def evaluation_interval_problem(value: float) -> str | None:
    """What is wrong with an ``evaluation_interval`` value, or None: the one check of it.

    The settings and ``RuleEngine`` both call it, each naming the value its own way.
    """
    low, high = EVALUATION_INTERVAL_RANGE
    if low <= value <= high:  # NaN fails too
        return None
    return f"must be {low:g}..{high:g} seconds"


def _parse_pairs(value: Any, *, secret: bool) -> Any:
    """Parse the OTel ``key=value,key2=value2`` form (values percent-decoded, as the spec says)."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            shown = "an item without '='" if secret else repr(item)
            msg = f"expected key=value pairs separated by commas, got {shown}"
            raise ValueError(msg)
        pairs[urllib.parse.unquote(key.strip())] = urllib.parse.unquote(val.strip())
    return pairs


def env_names(field_name: str) -> tuple[str, ...]:
    """The environment variables a field reads, highest precedence first."""
    field = PacaOtelSettings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    choices = getattr(alias, "choices", ())
    return tuple(c for c in choices if isinstance(c, str) and c.isupper())


def env_source(field_name: str) -> str | None:
    """The variable that actually supplies ``field_name`` now (for error messages), if any."""
    for name in env_names(field_name):
        if name in os.environ:
            return name
    return None


class _PrefixedEnvSource(PydanticBaseSettingsSource):
    """Reads only ``PACA_OTEL_<NAME>`` and the standard ``OTEL_*`` variable of each field.

    A public :class:`PydanticBaseSettingsSource` rather than a tweaked ``EnvSettingsSource``:
    pydantic-settings' own env source also reads the bare field name as a case-insensitive
    variable (a container's ``LOG_LEVEL=debug``, ``ENVIRONMENT`` or ``SERVICE_NAME`` would
    become paca-otel settings), and narrowing it meant overriding a private method whose
    signature changed in 2.16. Values are passed on as the raw strings; the model's validators
    parse them (every structured field is ``NoDecode`` and parses its own string form).
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The first variable of ``field_name`` that is set (PACA_OTEL_* before OTEL_*)."""
        choices = getattr(field.validation_alias, "choices", ())
        for name in choices:
            if isinstance(name, str) and name.isupper() and name in os.environ:
                return os.environ[name], field_name, False
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


class PacaOtelSettings(BaseSettings):
    """The effective configuration of paca-otel (see the README table for every field)."""

    model_config = SettingsConfigDict(
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the prefixed environment (see :class:`_PrefixedEnvSource`)."""
        return (
            init_settings,
            _PrefixedEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    # --- resource -----------------------------------------------------------------------------
    service_name: str = _env(
        "service_name", "OTEL_SERVICE_NAME", default="unknown_service", description="service.name"
    )
    service_version: str | None = _env(
        "service_version", default=None, description="service.version"
    )
    environment: str | None = _env(
        "environment", default=None, description="deployment.environment.name"
    )
    resource_attributes: Annotated[dict[str, str], NoDecode] = _env(
        "resource_attributes",
        "OTEL_RESOURCE_ATTRIBUTES",
        default_factory=dict,
        description="extra resource attributes, key=value,key2=value2",
    )

    # --- exporters ----------------------------------------------------------------------------
    traces_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "traces_exporter",
        "OTEL_TRACES_EXPORTER",
        default=None,
        description="otlp, console, none (comma list); default otlp if an OTLP endpoint is set, "
        "else none",
    )
    metrics_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "metrics_exporter",
        "OTEL_METRICS_EXPORTER",
        default=None,
        description="otlp, prometheus, console, none; default otlp if an OTLP endpoint is set, "
        "else prometheus",
    )
    logs_exporter: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "logs_exporter",
        "OTEL_LOGS_EXPORTER",
        default=None,
        description="otlp, console, none; default otlp if an OTLP endpoint is set, else none",
    )
    otlp_endpoint: str | None = _env(
        "otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", default=None,
        description="collector base URL (http/protobuf appends /v1/<signal>)",
    )  # fmt: skip
    otlp_traces_endpoint: str | None = _env(
        "otlp_traces_endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=None,
        description="full URL for spans (used as is)",
    )  # fmt: skip
    otlp_metrics_endpoint: str | None = _env(
        "otlp_metrics_endpoint", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", default=None,
        description="full URL for metrics (used as is)",
    )  # fmt: skip
    otlp_logs_endpoint: str | None = _env(
        "otlp_logs_endpoint", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", default=None,
        description="full URL for logs (used as is)",
    )  # fmt: skip
    otlp_protocol: Protocol = _env(
        "otlp_protocol", "OTEL_EXPORTER_OTLP_PROTOCOL", default="grpc",
        description="grpc or http/protobuf",
    )  # fmt: skip
    otlp_traces_protocol: Protocol | None = _env(
        "otlp_traces_protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", default=None,
        description="per-signal protocol",
    )  # fmt: skip
    otlp_metrics_protocol: Protocol | None = _env(
        "otlp_metrics_protocol", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", default=None,
        description="per-signal protocol",
    )  # fmt: skip
    otlp_logs_protocol: Protocol | None = _env(
        "otlp_logs_protocol", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", default=None,
        description="per-signal protocol",
    )  # fmt: skip
    otlp_headers: Annotated[dict[str, SecretStr], NoDecode] = _env(
        "otlp_headers", "OTEL_EXPORTER_OTLP_HEADERS", default_factory=dict,
        description="key=value,... sent with every export (masked in `paca-otel config`)",
    )  # fmt: skip
    otlp_traces_headers: Annotated[dict[str, SecretStr] | None, NoDecode] = _env(
        "otlp_traces_headers", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", default=None,
        description="per-signal headers (replace the generic ones)",
    )  # fmt: skip
    otlp_metrics_headers: Annotated[dict[str, SecretStr] | None, NoDecode] = _env(
        "otlp_metrics_headers", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", default=None,
        description="per-signal headers",
    )  # fmt: skip
    otlp_logs_headers: Annotated[dict[str, SecretStr] | None, NoDecode] = _env(
        "otlp_logs_headers", "OTEL_EXPORTER_OTLP_LOGS_HEADERS", default=None,
        description="per-signal headers",
    )  # fmt: skip
    otlp_timeout: float = _env(
        "otlp_timeout", "OTEL_EXPORTER_OTLP_TIMEOUT", default=10_000, gt=0,
        description="export timeout in milliseconds (the OTel spec's unit)",
    )  # fmt: skip
    otlp_compression: Literal["gzip", "none"] = _env(
        "otlp_compression", "OTEL_EXPORTER_OTLP_COMPRESSION", default="none",
        description="gzip or none",
    )  # fmt: skip
    otlp_insecure: bool | None = _env(
        "otlp_insecure", "OTEL_EXPORTER_OTLP_INSECURE", default=None,
        description="gRPC without TLS; default: from the endpoint's scheme",
    )  # fmt: skip
    prometheus_host: str = _env(
        "prometheus_host", "OTEL_EXPORTER_PROMETHEUS_HOST", default="127.0.0.1",
        description="scrape endpoint address (standalone server)",
    )  # fmt: skip
    prometheus_port: int = _env(
        "prometheus_port", "OTEL_EXPORTER_PROMETHEUS_PORT", default=9464, ge=0, le=65535,
        description="scrape endpoint port (standalone server)",
    )  # fmt: skip
    metric_export_interval: float = _env(
        "metric_export_interval", "OTEL_METRIC_EXPORT_INTERVAL", default=60_000, gt=0,
        description="push interval of OTLP/console metrics, milliseconds",
    )  # fmt: skip
    metric_export_timeout: float = _env(
        "metric_export_timeout", "OTEL_METRIC_EXPORT_TIMEOUT", default=30_000, gt=0,
        description="metric export timeout, milliseconds",
    )  # fmt: skip
    traces_sampler: str = _env(
        "traces_sampler", "OTEL_TRACES_SAMPLER", default="parentbased_always_on",
        description="always_on, always_off, traceidratio, parentbased_*",
    )  # fmt: skip
    traces_sampler_arg: float | None = _env(
        "traces_sampler_arg", "OTEL_TRACES_SAMPLER_ARG", default=None, ge=0, le=1,
        description="ratio for the traceidratio samplers",
    )  # fmt: skip
    sdk_disabled: bool = _env(
        "sdk_disabled", "OTEL_SDK_DISABLED", default=False,
        description="true: no-op providers, nothing exported",
    )  # fmt: skip

    # --- signals ------------------------------------------------------------------------------
    logs: bool = _env(
        "logs", default=False,
        description="install the JSON log handler and the OTel logging bridge on the root logger",
    )  # fmt: skip
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = _env(
        "log_level", default="INFO", description="level of the installed log handlers"
    )
    system_metrics: bool = _env(
        "system_metrics", default=True, description="psutil system and process gauges"
    )
    system_metrics_per_cpu: bool = _env(
        "system_metrics_per_cpu", default=False, description="opt-in per-core CPU utilisation"
    )
    system_metrics_connections: bool = _env(
        "system_metrics_connections", default=False,
        description="opt-in connection counts (expensive: ~10 ms per collection)",
    )  # fmt: skip
    system_metrics_disk_exclude: str = _env(
        "system_metrics_disk_exclude",
        default=r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$",
        description="regex of block devices not reported (node_exporter's default; '' = all)",
    )  # fmt: skip
    shutdown_timeout: float = _env(
        "shutdown_timeout", default=5.0, gt=0,
        description="seconds `shutdown()` may take to flush before giving up",
    )  # fmt: skip

    # --- alerting -----------------------------------------------------------------------------
    evaluation_interval: float = _env(
        "evaluation_interval", default=15.0,
        description="seconds between rule evaluations (1..86400)",
    )  # fmt: skip
    max_series: int = _env(
        "max_series", default=10_000, ge=1,
        description="series the alerting store keeps; new ones beyond it are dropped and counted",
    )  # fmt: skip
    max_points: int = _env(
        "max_points", default=1_000, ge=2,
        description="points kept per series (a ring buffer; the oldest is evicted)",
    )  # fmt: skip
    max_window: float = _env(
        "max_window", default=3600.0, gt=0,
        description="seconds of history kept per series (the longest rule window)",
    )  # fmt: skip
    state_path: Path | None = _env(
        "state_path", default=None,
        description="SQLite file for alert state and the notification outbox (none: in memory)",
    )  # fmt: skip
    smtp_host: str | None = _env("smtp_host", default=None, description="SMTP server for email")
    smtp_port: int = _env("smtp_port", default=25, ge=1, le=65535, description="SMTP port")
    smtp_username: str | None = _env("smtp_username", default=None, description="SMTP user")
    smtp_password: SecretStr | None = _env(
        "smtp_password", default=None, description="SMTP password (never logged)"
    )
    smtp_from: str = _env(
        "smtp_from", default="paca-otel@localhost", description="sender address of alert email"
    )
    smtp_to: Annotated[tuple[str, ...], NoDecode] = _env(
        "smtp_to", default=(), description="recipients, comma-separated"
    )
    smtp_starttls: bool = _env("smtp_starttls", default=False, description="use STARTTLS")
    webhook_url: SecretStr | None = _env(
        "webhook_url", default=None, description="Alertmanager-v4-style JSON webhook"
    )
    slack_webhook_url: SecretStr | None = _env(
        "slack_webhook_url", default=None, description="Slack-style incoming webhook"
    )
    alertmanager_url: SecretStr | None = _env(
        "alertmanager_url", default=None, description="Prometheus Alertmanager base URL"
    )

    # --- storage (H4b: paca_otel/storage) ----------------------------------------------------
    storage_key: SecretStr | None = _env(
        "storage_key", default=None,
        description="key encrypting stored alert state and notifications (AES-GCM; never logged)",
    )  # fmt: skip

    # --- OTLP per-signal options (issue 6, OTel conventions) ------------------------------------
    otlp_certificate: Path | None = _env(
        "otlp_certificate", "OTEL_EXPORTER_OTLP_CERTIFICATE", default=None,
        description="CA bundle (PEM) that verifies the collector's TLS certificate",
    )  # fmt: skip
    otlp_traces_timeout: float | None = _env(
        "otlp_traces_timeout", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", default=None, gt=0,
        description="per-signal export timeout, milliseconds",
    )  # fmt: skip
    otlp_metrics_timeout: float | None = _env(
        "otlp_metrics_timeout", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", default=None, gt=0,
        description="per-signal export timeout, milliseconds",
    )  # fmt: skip
    otlp_logs_timeout: float | None = _env(
        "otlp_logs_timeout", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", default=None, gt=0,
        description="per-signal export timeout, milliseconds",
    )  # fmt: skip
    otlp_traces_compression: Literal["gzip", "none"] | None = _env(
        "otlp_traces_compression", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", default=None,
        description="per-signal compression",
    )  # fmt: skip
    otlp_metrics_compression: Literal["gzip", "none"] | None = _env(
        "otlp_metrics_compression", "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", default=None,
        description="per-signal compression",
    )  # fmt: skip
    otlp_logs_compression: Literal["gzip", "none"] | None = _env(
        "otlp_logs_compression", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", default=None,
        description="per-signal compression",
    )  # fmt: skip
    otlp_traces_insecure: bool | None = _env(
        "otlp_traces_insecure", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", default=None,
        description="per-signal gRPC without TLS",
    )  # fmt: skip
    otlp_metrics_insecure: bool | None = _env(
        "otlp_metrics_insecure", "OTEL_EXPORTER_OTLP_METRICS_INSECURE", default=None,
        description="per-signal gRPC without TLS",
    )  # fmt: skip
    otlp_logs_insecure: bool | None = _env(
        "otlp_logs_insecure", "OTEL_EXPORTER_OTLP_LOGS_INSECURE", default=None,
        description="per-signal gRPC without TLS",
    )  # fmt: skip
    otlp_traces_certificate: Path | None = _env(
        "otlp_traces_certificate", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", default=None,
        description="per-signal CA bundle",
    )  # fmt: skip
    otlp_metrics_certificate: Path | None = _env(
        "otlp_metrics_certificate", "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", default=None,
        description="per-signal CA bundle",
    )  # fmt: skip
    otlp_logs_certificate: Path | None = _env(
        "otlp_logs_certificate", "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", default=None,
        description="per-signal CA bundle",
    )  # fmt: skip

    # --- metric labels (H4a, issue 6 section 5: label values) -------------------------------
    label_value_max_length: int = _env(
        "label_value_max_length", default=2048, ge=1,
        description="characters kept of a metric label value; longer ones are cut "
        "and counted in paca_otel.dropped{reason=label_value_truncated}",
    )  # fmt: skip

    # --- history (H8: paca_otel/analysis/history.py; checked by HistoryStore.from_settings) ---
    history_enabled: bool = _env(
        "history_enabled", default=False,
        description="record every collection in the embedded metric history (SQLite)",
    )  # fmt: skip
    history_path: Path | None = _env(
        "history_path", default=None,
        description="history file (none: $XDG_DATA_HOME/paca-otel/history.sqlite3)",
    )  # fmt: skip
    history_interval: float = _env(
        "history_interval", default=10.0, gt=0,
        description="seconds between the collections recorded in the history (raw resolution)",
    )  # fmt: skip
    history_tiers: str = _env(
        "history_tiers", default="raw:24h,1m:7d,1h:90d",
        description="history resolution:retention tiers, raw first (keep min/max/sum/count)",
    )  # fmt: skip
    history_sensitive: str | None = _env(
        "history_sensitive", default=None,
        description="RE2 pattern of metric names whose history is encrypted (needs storage_key)",
    )  # fmt: skip

    # --- privacy: sensitive-data scrubbing ----------------------------------------------------
    scrub_enabled: bool = _env(
        "scrub_enabled", default=True,
        description="scrub secrets from spans, logs, metric labels, payloads and reports",
    )  # fmt: skip
    scrub_key_patterns: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_key_patterns", default=None,
        description="regexes for sensitive keys (JSON list or comma-separated; none: built-in)",
    )  # fmt: skip
    scrub_value_patterns: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_value_patterns", default=None,
        description="detector names or regexes for secret-shaped values (none: built-in)",
    )  # fmt: skip
    scrub_allow_keys: Annotated[tuple[str, ...] | None, NoDecode] = _env(
        "scrub_allow_keys", default=None,
        description="keys never scrubbed, exact names (none: built-in allow-list)",
    )  # fmt: skip
    scrub_marker: str = _env(
        "scrub_marker", default="[REDACTED]", min_length=1,
        description="what replaces a scrubbed value",
    )  # fmt: skip

    # --- deployments ----------------------------------------------------------------------------
    rules_file: Path | None = _env(
        "rules_file", default=None,
        description="YAML rule file loaded when monitoring starts (the same in every worker)",
    )  # fmt: skip
    multiprocess_dir: Path | None = _env(
        "multiprocess_dir", default=None,
        description=(
            "directory the workers of one service share (uvicorn --workers, gunicorn); without"
            " state_path, alert state, rules and silences live in alerting.sqlite3 there and"
            " one elected worker evaluates the rules"
        ),
    )  # fmt: skip

    # --- scheduled reports (analysis) ---------------------------------------------------------
    report_every: float | None = _env(
        "report_every", default=None, gt=0,
        description="send the analysis report every N seconds (86400: daily; needs history)",
    )  # fmt: skip
    report_channels: Annotated[tuple[str, ...], NoDecode] = _env(
        "report_channels", default=("log",),
        description="channels scheduled reports go to, comma-separated (not alertmanager)",
    )  # fmt: skip

    # --- monitoring API access control (H10: paca_otel/web) ------------------------------------
    api_tokens: Annotated[tuple[str, ...], NoDecode] = _env(
        "api_tokens", default=(),
        description="API tokens, name:role:sha256 entries (`paca-otel token create`); hashes only",
    )  # fmt: skip
    public_routes: Annotated[tuple[str, ...], NoDecode] = _env(
        "public_routes", default=("/health",),
        description="monitoring API paths (after the prefix) served without a token",
    )  # fmt: skip
    metrics_auth: bool = _env(
        "metrics_auth", default=False,
        description="require a viewer token on the app's /metrics (Prometheus: authorization)",
    )  # fmt: skip
    body_limit: int = _env(
        "body_limit", default=65_536, ge=1024, le=64 * 1024 * 1024,
        description="largest monitoring API request body in bytes (413 past it)",
    )  # fmt: skip
    auth_failure_limit: int = _env(
        "auth_failure_limit", default=10, ge=1,
        description="failed authentications a client address may make per window (then 429)",
    )  # fmt: skip
    auth_failure_window: float = _env(
        "auth_failure_window", default=60.0, gt=0,
        description="seconds over which auth_failure_limit refills",
    )  # fmt: skip
    cors_origins: Annotated[tuple[str, ...], NoDecode] = _env(
        "cors_origins", default=(),
        description="origins allowed to call the monitoring API cross-site (none: CORS off)",
    )  # fmt: skip
    audit_retention: float = _env(
        "audit_retention", default=90 * 86_400.0, gt=0,
        description="seconds audit log rows are kept",
    )  # fmt: skip
    session_ttl: float = _env(
        "session_ttl", default=8 * 3600.0, gt=0,
        description="seconds a dashboard sign-in lasts",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
    @field_validator("evaluation_interval")
    @classmethod
    def _evaluation_interval(cls, value: float) -> float:
        problem = evaluation_interval_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _api_tokens(cls, value: Any) -> Any:
        from paca_otel.security import parse_api_tokens

        return tuple(token.entry() for token in parse_api_tokens(value))

    @field_validator("public_routes", "cors_origins", mode="before")
    @classmethod
    def _string_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("resource_attributes", mode="before")
    @classmethod
    def _resource_pairs(cls, value: Any) -> Any:
        return _parse_pairs(value, secret=False)

    @field_validator(
        "otlp_headers", "otlp_traces_headers", "otlp_metrics_headers", "otlp_logs_headers",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _header_pairs(cls, value: Any) -> Any:
        return _parse_pairs(value, secret=True)

    @field_validator("traces_exporter", "metrics_exporter", "logs_exporter", mode="before")
    @classmethod
    def _exporter_list(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else list(value)
        names = tuple(str(item).strip().lower() for item in items if str(item).strip())
        signal = str(info.field_name).removesuffix("_exporter")
        allowed = allowed_exporters(signal)
        for name in names:
            if name not in allowed:
                msg = f"{name!r} is not allowed for {signal}; choose from {', '.join(allowed)}"
                raise ValueError(msg)
        return names

    @field_validator(
        "otlp_endpoint", "otlp_traces_endpoint", "otlp_metrics_endpoint", "otlp_logs_endpoint"
    )
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = split_endpoint(value)
        try:
            parts.port  # noqa: B018  # the property validates the port (range, digits)
        except ValueError as exc:
            msg = f"not a valid endpoint URL ({exc}); expected e.g. http://collector:4317"
            raise ValueError(msg) from None
        if not parts.hostname:
            msg = "not a valid endpoint URL (no host); expected e.g. http://collector:4317"
            raise ValueError(msg)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "scrub_key_patterns", "scrub_value_patterns", "scrub_allow_keys", mode="before"
    )
    @classmethod
    def _pattern_list(cls, value: Any) -> Any:
        # Regexes may hold commas: a JSON list is read as such, anything else split on commas.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                try:
                    return tuple(str(v) for v in json.loads(text))
                except ValueError:
                    msg = "not a JSON list of strings"
                    raise ValueError(msg) from None
            return tuple(v.strip() for v in text.split(",") if v.strip())
        return value

    @field_validator("smtp_to", "report_channels", mode="before")
    @classmethod
    def _address_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("traces_sampler", mode="before")
    @classmethod
    def _sampler(cls, value: Any) -> Any:
        name = str(value).strip().lower()
        allowed = allowed_samplers()
        if name not in allowed:
            msg = f"not one of {', '.join(allowed)}"
            raise ValueError(msg)
        return name

    @field_validator("system_metrics_disk_exclude")
    @classmethod
    def _regex(cls, value: str) -> str:
        import re

        try:
            re.compile(value)
        except re.error as exc:
            msg = f"not a valid regular expression: {exc}"
            raise ValueError(msg) from None
        return value

    @field_validator(
        "otlp_timeout", "metric_export_interval", "metric_export_timeout",
        "otlp_traces_timeout", "otlp_metrics_timeout", "otlp_logs_timeout",
    )  # fmt: skip
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            msg = f"expected a finite number of milliseconds, got {value!r}"
            raise ValueError(msg)
        return value

    @model_validator(mode="before")
    @classmethod
    def _service_name_from_resource(cls, data: Any) -> Any:
        """``service.name`` in the resource attributes names the service (OTel spec).

        Only when no ``service_name`` is given (argument, ``PACA_OTEL_SERVICE_NAME`` or
        ``OTEL_SERVICE_NAME``), which is the spec's order, and what the plain SDK does.
        """
        if not isinstance(data, dict) or data.get("service_name") is not None:
            return data
        raw = data.get("resource_attributes")
        try:
            pairs = _parse_pairs(raw, secret=False)
        except ValueError:
            return data  # the field validator reports the malformed value
        if isinstance(pairs, dict) and isinstance(pairs.get("service.name"), str):
            return {**data, "service_name": pairs["service.name"]}
        return data

    # --- derived values -----------------------------------------------------------------------
    def _any_otlp_endpoint(self) -> bool:
        return any(
            (self.otlp_endpoint, self.otlp_traces_endpoint, self.otlp_metrics_endpoint,
             self.otlp_logs_endpoint)
        )  # fmt: skip

    def exporters(self, signal: Signal) -> tuple[str, ...]:
        """The exporters in effect for ``signal`` ('none' removed), after defaults apply.

        Decision: with no exporter named and no OTLP endpoint, nothing needs an outside service:
        metrics go to the Prometheus scrape endpoint and traces/logs stay in process. Naming an
        OTLP endpoint (argument or any ``OTEL_EXPORTER_OTLP_*ENDPOINT``) switches to OTLP, which
        is what a user who points the SDK at a collector expects.
        """
        if self.sdk_disabled:
            return ()
        chosen = getattr(self, f"{signal}_exporter")
        if chosen is None:
            if self._any_otlp_endpoint():
                chosen = ("otlp",)
            else:
                chosen = ("prometheus",) if signal == "metrics" else ()
        return tuple(name for name in dict.fromkeys(chosen) if name != "none")

    def otlp_protocol_for(self, signal: Signal) -> Protocol:
        """The per-signal protocol if set, else the generic one."""
        specific: Protocol | None = getattr(self, f"otlp_{signal}_protocol")
        return specific or self.otlp_protocol

    def otlp_endpoint_for(self, signal: Signal) -> str:
        """The URL an exporter of ``signal`` sends to, following the OTel spec's rules.

        A per-signal endpoint is used as is; the generic one gets ``/v1/<signal>`` appended
        for http/protobuf (gRPC has no paths).
        """
        protocol = self.otlp_protocol_for(signal)
        specific: str | None = getattr(self, f"otlp_{signal}_endpoint")
        if specific:
            return specific
        base = self.otlp_endpoint or _DEFAULT_PORTS[protocol]
        if protocol == "http/protobuf":
            return base.rstrip("/") + f"/v1/{signal}"
        return base

    def otlp_headers_for(self, signal: Signal) -> dict[str, str]:
        """Per-signal headers if set, else the generic ones (the secret values, for exporters)."""
        specific: dict[str, SecretStr] | None = getattr(self, f"otlp_{signal}_headers")
        chosen = self.otlp_headers if specific is None else specific
        return {key: value.get_secret_value() for key, value in chosen.items()}

    def otlp_timeout_for(self, signal: Signal) -> float:
        """Export timeout in milliseconds: ``OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`` first."""
        specific: float | None = getattr(self, f"otlp_{signal}_timeout")
        return self.otlp_timeout if specific is None else specific

    def otlp_compression_for(self, signal: Signal) -> Literal["gzip", "none"]:
        """Compression: the per-signal setting first, then the generic one."""
        specific: Literal["gzip", "none"] | None = getattr(self, f"otlp_{signal}_compression")
        return specific or self.otlp_compression

    def otlp_insecure_for(self, signal: Signal) -> bool | None:
        """gRPC without TLS: per-signal, then generic; None means "from the endpoint's scheme"."""
        specific: bool | None = getattr(self, f"otlp_{signal}_insecure")
        return self.otlp_insecure if specific is None else specific

    def otlp_certificate_for(self, signal: Signal) -> Path | None:
        """CA bundle that verifies the collector: per-signal, then generic."""
        specific: Path | None = getattr(self, f"otlp_{signal}_certificate")
        return specific or self.otlp_certificate

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by ``'***'``."""
        data = self.model_dump(mode="json")
        for key in ("otlp_headers", "otlp_traces_headers", "otlp_metrics_headers",
                    "otlp_logs_headers"):  # fmt: skip
            if data.get(key):
                data[key] = dict.fromkeys(data[key], "***")
        if data.get("smtp_password"):
            data["smtp_password"] = "***"
        for key in ("webhook_url", "slack_webhook_url", "alertmanager_url"):
            secret: SecretStr | None = getattr(self, key)
            if secret is not None:
                data[key] = mask_url(secret.get_secret_value(), keep_path=key == "alertmanager_url")
        for key, value in data.items():
            if key.endswith(("_url", "endpoint")) and isinstance(value, str):
                data[key] = _mask_userinfo(value)
        return data


def split_endpoint(url: str) -> urllib.parse.SplitResult:
    """Split an OTLP endpoint; a gRPC one may be a bare ``host:port`` (as the OTel SDK allows)."""
    return urllib.parse.urlsplit(url if "://" in url else f"//{url}")


def mask_url(url: str, *, keep_path: bool = False) -> str:
    """A URL safe to show: no userinfo, no query, and (unless ``keep_path``) no path.

    Webhook URLs carry their token in the path (Slack) or the query; Alertmanager's path is
    just a prefix, so it may stay.
    """
    parts = urllib.parse.urlsplit(_mask_userinfo(url))
    path = parts.path if keep_path else ("/***" if parts.path.strip("/") else parts.path)
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit(parts._replace(path=path, query=query, fragment=""))


def _mask_userinfo(url: str) -> str:
    """``scheme://user:secret@host/...`` -> ``scheme://***@host/...`` (credentials in a URL)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def load_settings(**overrides: Any) -> PacaOtelSettings:
    """Build settings from arguments and the environment, turning errors into ConfigError.

    ``None`` arguments mean "not given" so ``configure(service_name=None)`` keeps the env value.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return PacaOtelSettings(**given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(part) for part in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            if not loc:
                problems.append(message)
                continue
            field_name = str(err["loc"][0])
            value = "***" if field_name in SECRET_FIELDS else repr(err.get("input"))
            problems.append(f"{_setting_label(field_name, given)}: {message} (got {value})")
        msg = "invalid paca-otel configuration: " + "; ".join(problems)
        raise ConfigError(msg) from None


def _setting_label(field_name: str, given: dict[str, Any]) -> str:
    """How the user set ``field_name``: the argument's name, or the variable actually set."""
    if field_name in given:
        return field_name
    variable = env_source(field_name)
    return f"{field_name} (from {variable})" if variable else field_name


@functools.cache
def _entry_point_names(group: str) -> frozenset[str]:
    """Names registered in an ``importlib.metadata`` entry-point group (the SDK's plug-ins)."""
    return frozenset(ep.name for ep in importlib.metadata.entry_points(group=group))


def allowed_exporters(signal: str) -> tuple[str, ...]:
    """Exporter names valid for ``signal``: built-ins plus ``opentelemetry_<signal>_exporter``."""
    names = _SIGNAL_EXPORTERS.get(signal, frozenset()) | _entry_point_names(
        f"opentelemetry_{signal}_exporter"
    )
    if signal != "metrics":
        names -= {"prometheus"}
    return tuple(sorted(names))


def allowed_samplers() -> tuple[str, ...]:
    """Sampler names: the spec's built-ins plus ``opentelemetry_traces_sampler`` entry points."""
    return tuple(sorted(_SAMPLERS | _entry_point_names("opentelemetry_traces_sampler")))


def settings_table() -> list[tuple[str, str, str, str]]:
    """(setting, env vars, default, meaning) rows for the README's configuration table."""
    rows = []
    for name, field in PacaOtelSettings.model_fields.items():
        alias = field.validation_alias
        envs = [c for c in getattr(alias, "choices", []) if isinstance(c, str) and c.isupper()]
        if field.default_factory is not None:
            default: Any = field.default_factory()  # type: ignore[call-arg]  # factories take no args here
        else:
            default = field.default
        rows.append(
            (name, ", ".join(f"`{e}`" for e in envs), repr(default), field.description or "")
        )
    return rows
