"""Telemetry options: the resource, the exporters and OTLP (generic and per signal), the
sampler and the SDK switch, with the OTel spec's rules that derive each signal's values.

These are the settings the OpenTelemetry SDK standardises, so each also reads its ``OTEL_*``
variable; :mod:`paca_otel.telemetry` turns them into providers and exporters.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode

from paca_otel.config._source import OptionGroup, _env, _parse_pairs

ExporterName = Literal["otlp", "prometheus", "console", "none"]
Protocol = Literal["grpc", "http/protobuf"]
Signal = Literal["traces", "metrics", "logs"]

_SIGNAL_EXPORTERS: dict[str, frozenset[str]] = {
    "traces": frozenset({"otlp", "console", "none"}),
    "metrics": frozenset({"otlp", "prometheus", "console", "none"}),
    "logs": frozenset({"otlp", "console", "none"}),
}
BUILTIN_SAMPLERS = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
_DEFAULT_PORTS: dict[str, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318",
}


class TelemetryOptions(OptionGroup):
    """Resource, exporters, OTLP and sampling: the OTel SDK's own settings."""

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

    @field_validator("traces_sampler", mode="before")
    @classmethod
    def _sampler(cls, value: Any) -> Any:
        name = str(value).strip().lower()
        allowed = allowed_samplers()
        if name not in allowed:
            msg = f"not one of {', '.join(allowed)}"
            raise ValueError(msg)
        return name

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


def split_endpoint(url: str) -> urllib.parse.SplitResult:
    """Split an OTLP endpoint; a gRPC one may be a bare ``host:port`` (as the OTel SDK allows)."""
    return urllib.parse.urlsplit(url if "://" in url else f"//{url}")


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
    return tuple(sorted(BUILTIN_SAMPLERS | _entry_point_names("opentelemetry_traces_sampler")))
