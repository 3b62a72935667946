"""Settings: one pydantic-settings model; precedence argument > PACA_OTEL_* > OTEL_* > default.

Every field can be given to ``configure(...)`` by name, or set through ``PACA_OTEL_<NAME>``; the
fields that OpenTelemetry standardises also read their ``OTEL_*`` variable, so a service already
set up for the OTel SDK keeps working. The README's configuration table is generated from
:func:`settings_table` so the two cannot drift apart.
"""

from __future__ import annotations

import math
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
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
_SECRET_FIELDS = ("password", "headers")
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


class _PrefixedEnvSource(EnvSettingsSource):
    """The environment source, reading only ``PACA_OTEL_*`` and the standard ``OTEL_*`` names.

    The field name is an alias too (so ``configure(service_name=...)`` wins over the
    environment), and pydantic-settings would otherwise also read it as a bare, case-insensitive
    variable: a container's ``LOG_LEVEL=debug``, ``ENVIRONMENT`` or ``SERVICE_NAME`` would become
    paca-otel settings, beat ``PACA_OTEL_*``, or fail ``configure()``.
    """

    def _extract_field_info(self, field: FieldInfo, field_name: str) -> list[tuple[str, str, bool]]:
        infos = super()._extract_field_info(field, field_name)
        return [info for info in infos if info[0] != field_name]


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
    otlp_headers: Annotated[dict[str, str], NoDecode] = _env(
        "otlp_headers", "OTEL_EXPORTER_OTLP_HEADERS", default_factory=dict,
        description="key=value,... sent with every export (masked in `paca-otel config`)",
    )  # fmt: skip
    otlp_traces_headers: Annotated[dict[str, str] | None, NoDecode] = _env(
        "otlp_traces_headers", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", default=None,
        description="per-signal headers (replace the generic ones)",
    )  # fmt: skip
    otlp_metrics_headers: Annotated[dict[str, str] | None, NoDecode] = _env(
        "otlp_metrics_headers", "OTEL_EXPORTER_OTLP_METRICS_HEADERS", default=None,
        description="per-signal headers",
    )  # fmt: skip
    otlp_logs_headers: Annotated[dict[str, str] | None, NoDecode] = _env(
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
        "evaluation_interval", default=15.0, ge=1.0,
        description="seconds between rule evaluations (>= 1)",
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
    webhook_url: str | None = _env(
        "webhook_url", default=None, description="Alertmanager-v4-style JSON webhook"
    )
    slack_webhook_url: str | None = _env(
        "slack_webhook_url", default=None, description="Slack-style incoming webhook"
    )
    alertmanager_url: str | None = _env(
        "alertmanager_url", default=None, description="Prometheus Alertmanager base URL"
    )

    # --- metric labels (H4a, issue 6 section 5: label values) -------------------------------
    label_value_max_length: int = _env(
        "label_value_max_length", default=2048, ge=1,
        description="characters kept of a metric label value; longer ones are cut "
        "and counted in paca_otel.dropped{reason=label_value_truncated}",
    )  # fmt: skip

    # --- validators ---------------------------------------------------------------------------
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
    def _exporter_list(cls, value: Any) -> Any:
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(item).strip().lower() for item in items if str(item).strip())

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

    @field_validator("smtp_to", mode="before")
    @classmethod
    def _address_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("traces_sampler", mode="before")
    @classmethod
    def _sampler(cls, value: Any) -> Any:
        name = str(value).strip().lower()
        if name not in _SAMPLERS:
            msg = f"not one of {', '.join(sorted(_SAMPLERS))}"
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

    @field_validator("otlp_timeout", "metric_export_interval", "metric_export_timeout")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            msg = f"expected a finite number of milliseconds, got {value!r}"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _exporters_allowed(self) -> PacaOtelSettings:
        for signal, allowed in _SIGNAL_EXPORTERS.items():
            chosen = getattr(self, f"{signal}_exporter")
            for name in chosen or ():
                if name not in allowed:
                    msg = (
                        f"{signal}_exporter: {name!r} is not allowed for {signal}; "
                        f"choose from {', '.join(sorted(allowed))}"
                    )
                    raise ValueError(msg)
        return self

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
        """Per-signal headers if set, else the generic ones."""
        specific: dict[str, str] | None = getattr(self, f"otlp_{signal}_headers")
        return dict(self.otlp_headers if specific is None else specific)

    def masked(self) -> dict[str, Any]:
        """The settings as plain data with every secret replaced by ``'***'``."""
        data = self.model_dump(mode="json")
        for key in ("otlp_headers", "otlp_traces_headers", "otlp_metrics_headers",
                    "otlp_logs_headers"):  # fmt: skip
            if data.get(key):
                data[key] = dict.fromkeys(data[key], "***")
        if data.get("smtp_password"):
            data["smtp_password"] = "***"
        for key in ("webhook_url", "slack_webhook_url"):
            if data.get(key):
                parts = urllib.parse.urlsplit(data[key])
                data[key] = f"{parts.scheme}://{parts.netloc}/***" if parts.path else data[key]
        for key, value in data.items():
            if key.endswith(("_url", "endpoint")) and isinstance(value, str):
                data[key] = _mask_userinfo(value)
        return data


def split_endpoint(url: str) -> urllib.parse.SplitResult:
    """Split an OTLP endpoint; a gRPC one may be a bare ``host:port`` (as the OTel SDK allows)."""
    return urllib.parse.urlsplit(url if "://" in url else f"//{url}")


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
            value = "***" if any(s in loc for s in _SECRET_FIELDS) else repr(err.get("input"))
            problems.append(f"{loc}: {message} (got {value})")
        msg = "invalid paca-otel configuration: " + "; ".join(problems)
        raise ConfigError(msg) from None


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
