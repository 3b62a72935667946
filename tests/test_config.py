"""Settings: precedence, the OTEL_* variables, validation messages, masking."""

from __future__ import annotations

import pytest

from paca_otel.config import PacaOtelSettings, load_settings, settings_table
from paca_otel.errors import ConfigError


def test_precedence_argument_over_paca_over_otel_over_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An argument beats PACA_OTEL_*, which beats OTEL_*, which beats the default."""
    assert load_settings().service_name == "unknown_service"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    assert load_settings().service_name == "from-otel"
    monkeypatch.setenv("PACA_OTEL_SERVICE_NAME", "from-paca")
    assert load_settings().service_name == "from-paca"
    assert load_settings(service_name="from-arg").service_name == "from-arg"


def test_none_argument_means_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(service_name=None) keeps the environment's value."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env")
    assert load_settings(service_name=None).service_name == "env"


def test_standard_otel_variables_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers, resource attributes and exporter lists use the OTel key=value,... forms."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc,x-team=a%20b")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core,region=eu-1")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp, console")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "9999")
    settings = load_settings()
    assert settings.otlp_headers_for("traces") == {"api-key": "abc", "x-team": "a b"}
    assert settings.resource_attributes == {"team": "core", "region": "eu-1"}
    assert settings.traces_exporter == ("otlp", "console")
    assert settings.metric_export_interval == 5000
    assert settings.traces_sampler == "parentbased_traceidratio"
    assert settings.traces_sampler_arg == 0.25
    assert settings.prometheus_port == 9999


def test_per_signal_endpoints_and_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-signal variables win; the generic HTTP endpoint gets /v1/<signal> appended."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9000/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317")
    settings = load_settings()
    assert settings.otlp_endpoint_for("traces") == "http://collector:4318/v1/traces"
    assert settings.otlp_endpoint_for("logs") == "http://logs:9000/custom"
    assert settings.otlp_protocol_for("metrics") == "grpc"
    assert settings.otlp_endpoint_for("metrics") == "http://metrics:4317"


def test_default_exporters_need_no_outside_service() -> None:
    """Without an endpoint: Prometheus metrics, no trace/log export; with one: OTLP."""
    plain = load_settings()
    assert plain.exporters("metrics") == ("prometheus",)
    assert plain.exporters("traces") == ()
    assert plain.exporters("logs") == ()
    with_collector = load_settings(otlp_endpoint="http://127.0.0.1:4317")
    assert with_collector.exporters("traces") == ("otlp",)
    assert with_collector.exporters("metrics") == ("otlp",)


def test_sdk_disabled_means_no_exporters() -> None:
    """OTEL_SDK_DISABLED turns every exporter off."""
    settings = load_settings(sdk_disabled=True, metrics_exporter="prometheus")
    assert settings.exporters("metrics") == ()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"metrics_exporter": "zipkin"}, "metrics_exporter: 'zipkin' is not allowed"),
        ({"traces_exporter": "prometheus"}, "traces_exporter: 'prometheus' is not allowed"),
        ({"prometheus_port": 70000}, "prometheus_port"),
        ({"otlp_protocol": "thrift"}, "otlp_protocol"),
        ({"traces_sampler": "sometimes"}, "traces_sampler: not one of"),
        ({"metric_export_interval": float("inf")}, "metric_export_interval"),
        ({"evaluation_interval": 0.1}, "evaluation_interval"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ],
)
def test_invalid_settings_raise_config_error_naming_the_setting(
    overrides: dict[str, object], expected: str
) -> None:
    """A bad value fails fast with ConfigError (a ValueError) that names the setting."""
    with pytest.raises(ConfigError, match=expected) as info:
        load_settings(**overrides)
    assert isinstance(info.value, ValueError)


def test_secrets_never_appear_in_errors_or_masked_output() -> None:
    """Header values and passwords are masked in error messages and in masked()."""
    with pytest.raises(ConfigError) as info:
        load_settings(otlp_headers="token-without-equals-sign-secret")
    assert "secret" not in str(info.value)
    settings = load_settings(
        otlp_headers="authorization=Bearer s3cret",
        smtp_password="hunter2",
        slack_webhook_url="https://hooks.example/services/T000/B000/XXXX",
    )
    masked = repr(settings.masked())
    assert "s3cret" not in masked
    assert "hunter2" not in masked
    assert "XXXX" not in masked
    assert "hunter2" not in repr(settings)


def test_settings_are_frozen() -> None:
    """Settings cannot change under a running configuration."""
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.service_name = "x"  # type: ignore[misc]


def test_readme_documents_every_setting() -> None:
    """The README's configuration table names every setting and its env variables."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, envs, _default, _meaning in settings_table():
        assert f"`{name}`" in readme, name
        for env in envs.split(", "):
            assert env in readme, env
    assert len(settings_table()) == len(PacaOtelSettings.model_fields)


def test_disk_exclude_default_matches_the_source_default() -> None:
    """The setting's default is the node_exporter-style exclusion PsutilSource uses."""
    from paca_otel.signals.system_source import DEFAULT_DISK_EXCLUDE

    assert load_settings().system_metrics_disk_exclude == DEFAULT_DISK_EXCLUDE
    with pytest.raises(ConfigError, match="system_metrics_disk_exclude"):
        load_settings(system_metrics_disk_exclude="(unclosed")
