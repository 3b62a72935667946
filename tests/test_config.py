"""Settings: precedence, the OTEL_* variables, validation messages, masking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paca_otel.config import PacaOtelSettings, load_settings, settings_table
from paca_otel.errors import ConfigError
from tests import fake_plugin as fake_plugin_module


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
    from paca_otel.signals._system_source import DEFAULT_DISK_EXCLUDE

    assert load_settings().system_metrics_disk_exclude == DEFAULT_DISK_EXCLUDE
    with pytest.raises(ConfigError, match="system_metrics_disk_exclude"):
        load_settings(system_metrics_disk_exclude="(unclosed")


# --- issue 6: public settings source, secrets, OTel conventions ------------------------------


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed package providing a traces exporter and a sampler through entry points."""
    fake_plugin_module.install(tmp_path, monkeypatch)
    yield
    fake_plugin_module.uninstall()


def test_env_source_is_a_public_settings_source() -> None:
    """The environment is read by a PydanticBaseSettingsSource, not a patched EnvSettingsSource."""
    from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource

    from paca_otel.config._source import _PrefixedEnvSource

    assert issubclass(_PrefixedEnvSource, PydanticBaseSettingsSource)
    assert not issubclass(_PrefixedEnvSource, EnvSettingsSource)


def test_only_prefixed_and_otel_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bare LOG_LEVEL / SERVICE_NAME / ENVIRONMENT variables of a container are ignored."""
    monkeypatch.setenv("LOG_LEVEL", "nonsense")
    monkeypatch.setenv("SERVICE_NAME", "bare")
    monkeypatch.setenv("service_name", "bare-lower")
    monkeypatch.setenv("ENVIRONMENT", "bare-env")
    settings = load_settings()
    assert settings.service_name == "unknown_service"
    assert settings.log_level == "INFO"
    assert settings.environment is None


def test_bare_field_names_in_the_environment_are_not_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only PACA_OTEL_* and OTEL_* variables are read: LOG_LEVEL=debug or SERVICE_NAME are not."""
    monkeypatch.setenv("LOG_LEVEL", "debug")  # common in containers; not ours
    monkeypatch.setenv("ENVIRONMENT", "from-bare-env")
    monkeypatch.setenv("SERVICE_NAME", "bare")
    monkeypatch.setenv("PACA_OTEL_SERVICE_NAME", "paca")
    loaded = load_settings()
    assert loaded.service_name == "paca"
    assert loaded.environment is None
    assert loaded.log_level == "INFO"
    assert load_settings(service_name="arg").service_name == "arg"


def test_repr_and_str_of_settings_hold_no_secret() -> None:
    """repr()/str() show no OTLP header value, webhook credential or SMTP password."""
    settings = load_settings(
        otlp_headers="authorization=Bearer gen-s3cret",
        otlp_traces_headers="x-api-key=traces-s3cret",
        otlp_logs_headers="x-api-key=logs-s3cret",
        smtp_password="hunter2",
        webhook_url="http://bob:hook-pass@hooks.example/alert?token=tok-s3cret",
        slack_webhook_url="https://hooks.slack.example/services/T0/B0/slack-s3cret",
        alertmanager_url="http://am:am-pass@am.example:9093",
    )
    for shown in (repr(settings), str(settings), repr(settings.masked())):
        for secret in ("gen-s3cret", "traces-s3cret", "logs-s3cret", "hunter2", "hook-pass",
                       "tok-s3cret", "slack-s3cret", "am-pass"):  # fmt: skip
            assert secret not in shown, (secret, shown)
    assert settings.otlp_headers_for("traces") == {"x-api-key": "traces-s3cret"}
    assert settings.masked()["alertmanager_url"] == "http://***@am.example:9093"


@pytest.mark.parametrize(
    "variable", ["PACA_OTEL_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"]
)
def test_malformed_headers_variable_error_never_shows_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """A malformed headers variable fails naming the variable, without printing its value."""
    monkeypatch.setenv(variable, "authorization=Bearer ok,Bearer-leaked-s3cret")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "s3cret" not in str(info.value)
    assert variable in str(info.value)


def test_service_name_from_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """service.name in OTEL_RESOURCE_ATTRIBUTES names the service; OTEL_SERVICE_NAME still wins."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=foo,team=core")
    assert load_settings().service_name == "foo"
    assert load_settings(resource_attributes={"service.name": "bar"}).service_name == "bar"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "named")
    assert load_settings().service_name == "named"


def test_per_signal_otlp_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT/_COMPRESSION/_INSECURE/_CERTIFICATE beat the generic."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1234")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/traces-ca.pem")
    settings = load_settings()
    assert settings.otlp_timeout_for("traces") == 1234
    assert settings.otlp_timeout_for("metrics") == 5000
    assert settings.otlp_compression_for("logs") == "gzip"
    assert settings.otlp_compression_for("traces") == "none"
    assert settings.otlp_insecure_for("metrics") is True
    assert settings.otlp_insecure_for("logs") is None
    assert str(settings.otlp_certificate_for("traces")) == "/etc/traces-ca.pem"
    assert str(settings.otlp_certificate_for("logs")) == "/etc/ca.pem"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_EXPORTER", "nosuchexporter"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1"),
        ("PACA_OTEL_LOG_LEVEL", "loud"),
    ],
)
def test_errors_name_the_variable_the_user_set(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A bad OTEL_* value is reported under that variable's name, not PACA_OTEL_*."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_entry_point_exporters_and_samplers_are_accepted(fake_plugin: None) -> None:
    """Exporters and samplers that installed packages register as SDK entry points validate."""
    settings = load_settings(traces_exporter="fakezipkin", traces_sampler="fake_sampler")
    assert settings.exporters("traces") == ("fakezipkin",)
    assert settings.traces_sampler == "fake_sampler"
    with pytest.raises(ConfigError, match=r"choose from .*fakezipkin"):
        load_settings(traces_exporter="zipkin-not-installed")
