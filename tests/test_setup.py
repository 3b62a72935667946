"""configure()/shutdown(): providers, resource, exporters, idempotence, failure isolation."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import httpx
import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider, sampling

from paca_otel import configure, get_telemetry
from paca_otel.errors import ConfigError
from tests._wait import wait_until
from tests.peers import free_port


def _quiet(**extra: object) -> dict[str, object]:
    return {"metrics_exporter": "none", "system_metrics": False, **extra}


def _probing() -> bool:
    """Whether the background OTLP start-up probe thread is still running."""
    return any(t.name == "paca-otel-probe" for t in threading.enumerate())


def test_configure_sets_global_providers_and_resource() -> None:
    """The handle owns the providers and they become the OTel globals."""
    tel = configure(service_name="shop", service_version="1.2.3", environment="prod", **_quiet())
    assert trace.get_tracer_provider() is tel.tracer_provider
    assert metrics.get_meter_provider() is tel.meter_provider
    attrs = tel.resource.attributes
    assert attrs["service.name"] == "shop"
    assert attrs["service.version"] == "1.2.3"
    assert attrs["deployment.environment.name"] == "prod"
    assert attrs["service.instance.id"]
    assert get_telemetry() is tel


def test_resource_reads_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES reach the resource."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "env-svc")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=core")
    tel = configure(**_quiet())
    assert tel.resource.attributes["service.name"] == "env-svc"
    assert tel.resource.attributes["team"] == "core"


def test_configure_twice_with_same_settings_returns_same_handle() -> None:
    """No duplicate providers, readers or servers."""
    port = free_port()
    first = configure(metrics_exporter="prometheus", prometheus_port=port, system_metrics=False)
    second = configure(metrics_exporter="prometheus", prometheus_port=port, system_metrics=False)
    assert first is second
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200


def test_configure_with_new_settings_replaces_the_old_providers() -> None:
    """The old handle is shut down and the new providers are global."""
    first = configure(service_name="a", **_quiet())
    second = configure(service_name="b", **_quiet())
    assert first.is_shutdown
    assert not second.is_shutdown
    assert trace.get_tracer_provider() is second.tracer_provider
    with trace.get_tracer("t").start_as_current_span("s") as span:
        assert span.get_span_context().is_valid


def test_prometheus_scrape_endpoint_serves_metrics() -> None:
    """The standalone endpoint serves our metrics on 127.0.0.1 and stops at shutdown."""
    port = free_port()
    tel = configure(metrics_exporter="prometheus", prometheus_port=port, system_metrics=True)
    metrics.get_meter("t").create_counter("orders").add(2, {"shop": "a"})
    body = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert "orders_total{" in body
    assert "system_memory_usage_bytes" in body
    tel.shutdown()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_prometheus_exporter_set_up_logs_no_sdk_warning(caplog: pytest.LogCaptureFixture) -> None:
    """configure() with the Prometheus reader does not collect before the reader is registered."""
    caplog.set_level(logging.WARNING)
    configure(metrics_exporter="prometheus", prometheus_port=free_port(), system_metrics=False)
    sdk = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
    assert sdk == []


def test_busy_prometheus_port_warns_and_starts(caplog: pytest.LogCaptureFixture) -> None:
    """A port in use never stops the app from starting."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="paca_otel"):
            tel = configure(
                metrics_exporter="prometheus", prometheus_port=port, system_metrics=False
            )
    assert not tel.is_shutdown
    assert "cannot serve Prometheus metrics" in caplog.text


@pytest.mark.timeout(60)
def test_unreachable_collector_starts_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A collector that is down costs one warning, not a failed start or a log storm."""
    port = free_port()  # nothing listens there
    with caplog.at_level(logging.WARNING):
        tel = configure(
            otlp_endpoint=f"http://127.0.0.1:{port}", metric_export_interval=200,
            otlp_timeout=500, system_metrics=False, logs_exporter="none",
        )  # fmt: skip
        with trace.get_tracer("t").start_as_current_span("s"):
            pass
        wait_until(lambda: str(port) in caplog.text, "the warning naming the port", timeout=30)
        tel.force_flush(timeout_millis=1500)
        tel.shutdown(timeout_millis=1500)  # bounded: the test's timeout fails a hung shutdown
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert str(port) in warnings[0].getMessage()  # the probe's or the exporter's, never both


def test_bare_host_port_grpc_endpoint_is_probed_at_that_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`collector:4317` (no scheme, as the OTel SDK allows for gRPC) is probed there, not :80."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        caplog.set_level(logging.WARNING, logger="paca_otel")
        configure(
            traces_exporter="otlp", logs_exporter="none", otlp_endpoint=f"127.0.0.1:{port}",
            **_quiet(),
        )  # fmt: skip
        listener.settimeout(30)
        listener.accept()[0].close()  # the probe connected here, not to port 80
        wait_until(lambda: not _probing(), "the start-up probe to finish", timeout=30)
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]


def test_shutdown_is_idempotent_and_bounded() -> None:
    """shutdown() twice is fine and returns promptly."""
    tel = configure(**_quiet())
    tel.shutdown()
    tel.shutdown()
    assert get_telemetry() is None


def test_extra_reader_sees_custom_metrics() -> None:
    """User-supplied readers are attached to the same MeterProvider."""
    reader = InMemoryMetricReader()
    configure(metric_readers=[reader], **_quiet())
    metrics.get_meter("t").create_counter("jobs").add(1)
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "jobs" in names


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        ("always_on", None, "AlwaysOnSampler"),
        ("always_off", None, "AlwaysOffSampler"),
        ("traceidratio", 0.5, "TraceIdRatioBased{0.5}"),
        ("parentbased_traceidratio", 0.1, "ParentBased{root:TraceIdRatioBased{0.1}"),
    ],
)
def test_sampler_settings(name: str, arg: float | None, expected: str) -> None:
    """OTEL_TRACES_SAMPLER(_ARG) choose the SDK sampler."""
    tel = configure(traces_sampler=name, traces_sampler_arg=arg, **_quiet())
    assert isinstance(tel.tracer_provider, TracerProvider)
    sampler = tel.tracer_provider.sampler
    assert isinstance(sampler, sampling.Sampler)
    assert sampler.get_description().startswith(expected)


def test_sdk_disabled_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: no scrape server, no system gauges, no globals."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    port = free_port()
    tel = configure(prometheus_port=port)
    assert tel.system is None
    assert tel.prometheus_registry is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_invalid_setting_fails_fast() -> None:
    """configure() raises ConfigError before building anything."""
    with pytest.raises(ConfigError, match="logs_exporter"):
        configure(logs_exporter="prometheus")
    assert get_telemetry() is None


def test_endpoint_with_a_bad_port_is_a_config_error() -> None:
    """An endpoint port out of range is a ConfigError naming the setting, not a bare ValueError."""
    with pytest.raises(ConfigError, match="otlp_endpoint"):
        configure(otlp_endpoint="http://127.0.0.1:99999", **_quiet())


def test_console_exporters() -> None:
    """traces_exporter=console attaches the SDK's console exporter.

    The exporter binds ``sys.stdout`` when the SDK module is imported, so pytest's capture
    cannot see its output; the processor chain is checked instead (a private SDK attribute).
    """
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    tel = configure(traces_exporter="console", **_quiet())
    found = [getattr(getattr(p, "exporter", None), "wrapped", None) for p in _processors(tel)]
    assert any(isinstance(e, ConsoleSpanExporter) for e in found), found


def test_series_store_bounds_come_from_settings() -> None:
    """max_series / max_points / max_window size the alerting store."""
    tel = configure(max_series=50, max_points=20, max_window=600, **_quiet())
    store = tel.pipeline.store
    assert (store.max_series, store.max_points, store.max_window) == (50, 20, 600.0)


def test_store_bounds_apply_even_when_the_store_already_exists() -> None:
    """An AlertManager made first does not freeze the store's default bounds."""
    from paca_otel import AlertManager

    AlertManager().add_rule_sync("r", "cpu_usage > 99", "log", 60)
    tel = configure(max_series=123, **_quiet())
    assert tel.pipeline.store.max_series == 123


# --- issue 6: OTel conventions, secrets in logs ----------------------------------------------


def _processors(tel: object) -> list[object]:
    """The span processors on the handle's provider, ours out of their fan-out (reads SDK
    internals: test only)."""
    registered = tel.tracer_provider._active_span_processor._span_processors  # type: ignore[attr-defined]  # test introspection
    return [p for r in registered for p in getattr(r, "processors", (r,))]


def _span_exporters(tel: object) -> list[object]:
    """The exporters behind the handle's batch processors."""
    exporters = [p.exporter for p in _processors(tel) if hasattr(p, "exporter")]
    return [getattr(e, "wrapped", e) for e in exporters]  # behind the privacy scrubber


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_per_signal_timeout_and_compression_reach_the_exporter(
    monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=1234 gives the span exporter a 1.234 s timeout."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1234")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    tel = configure(
        traces_exporter="otlp",
        otlp_protocol=protocol,
        otlp_endpoint=f"http://127.0.0.1:{free_port()}",
        **_quiet(),
    )
    (exporter,) = _span_exporters(tel)
    # Where the SDK keeps them (test introspection): on the gRPC exporter, or its HTTP client.
    holder = exporter if hasattr(exporter, "_timeout") else exporter._client
    assert holder._timeout == pytest.approx(1.234)
    assert "gzip" in repr(holder._compression).lower()
    tel.shutdown(timeout_millis=500)


def test_per_signal_insecure_and_certificate_reach_the_exporter_arguments(
    tmp_path: Path,
) -> None:
    """Per-signal insecure and certificate settings become the exporters' arguments."""
    from paca_otel.config import load_settings
    from paca_otel.telemetry._exporters import _otlp_kwargs

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    settings = load_settings(
        otlp_endpoint="http://collector:4317",
        otlp_traces_insecure=False,
        otlp_logs_certificate=str(ca),
        otlp_metrics_protocol="http/protobuf",
        otlp_metrics_certificate=str(ca),
    )
    traces = _otlp_kwargs(settings, "traces")
    assert traces["insecure"] is False
    assert _otlp_kwargs(settings, "logs")["insecure"] is True  # from the http:// scheme
    assert _otlp_kwargs(settings, "metrics")["certificate_file"] == str(ca)


def test_service_name_from_otel_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_RESOURCE_ATTRIBUTES=service.name=foo names the service foo, as the SDK does."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=foo")
    tel = configure(**_quiet())
    assert tel.resource.attributes["service.name"] == "foo"


def test_entry_point_exporter_and_sampler_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_TRACES_EXPORTER/OTEL_TRACES_SAMPLER naming plug-ins use what the entry points load."""
    from tests import fake_plugin

    fake_plugin.install(tmp_path, monkeypatch)
    try:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "fakezipkin")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "fake_sampler")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "1")
        tel = configure(**_quiet())
        with tel.tracer_provider.get_tracer("t").start_as_current_span("plugged"):
            pass
        assert tel.force_flush(timeout_millis=5_000)
        import paca_fake_plugin  # type: ignore[import-not-found]  # written by fake_plugin

        assert paca_fake_plugin.EXPORTED == ["plugged"]
        assert paca_fake_plugin.SAMPLER_ARGS == ["1.0"]
    finally:
        fake_plugin.uninstall()


@pytest.mark.parametrize("exporter", ["console", "otlp"])
def test_explicit_logs_exporter_sends_stdlib_logs_without_json_handler(
    monkeypatch: pytest.MonkeyPatch, exporter: str
) -> None:
    """OTEL_LOGS_EXPORTER alone installs the OTel log bridge (and no JSON stderr handler)."""
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    monkeypatch.setenv("OTEL_LOGS_EXPORTER", exporter)
    tel = configure(otlp_endpoint=f"http://127.0.0.1:{free_port()}", otlp_timeout=200, **_quiet())
    memory = InMemoryLogRecordExporter()
    tel.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    handles = tel.logging_handles
    assert handles is not None
    assert handles.stream_handler is None
    assert handles.otel_handler is not None
    assert isinstance(handles.otel_handler.inner, LoggingHandler)
    logging.getLogger("shop").warning("sent without logs=True")
    bodies = [d.log_record.body for d in memory.get_finished_logs()]
    assert "sent without logs=True" in bodies
    tel.shutdown(timeout_millis=500)


def test_webhook_credentials_never_reach_logs(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """With logs=True, a real webhook delivery logs no URL credential, in JSON or OTel records."""
    caplog.set_level(logging.INFO, logger="httpx")  # another module may have quietened it
    from opentelemetry.sdk._logs.export import (
        InMemoryLogRecordExporter,
        SimpleLogRecordProcessor,
    )

    from paca_otel.delivery.channels import WebhookChannel
    from paca_otel.delivery.channels._configured import channels_from_settings
    from tests.delivery.test_channels import Receiver, notification

    receiver = Receiver()
    host = receiver.url.removeprefix("http://")
    url = f"http://alice:hook-pass@{host}/hooks/abc-path-s3cret?token=query-s3cret"
    try:
        tel = configure(
            logs=True, logs_exporter="console", webhook_url=url, log_level="DEBUG", **_quiet()
        )
        memory = InMemoryLogRecordExporter()
        tel.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        channel = channels_from_settings(tel.settings)["webhook"]
        assert isinstance(channel, WebhookChannel)
        try:
            channel.send(notification())
        finally:
            channel.close()
        assert receiver.wait_for(1)
        # A plain client request to the same URL, as a host app's own code might log it.
        httpx.post(url, json={})
    finally:
        receiver.stop()
    exported = " ".join(
        f"{d.log_record.body} {dict(d.log_record.attributes or {})}"
        for d in memory.get_finished_logs()
    )
    json_lines = capsys.readouterr().err
    assert "HTTP Request" in json_lines, json_lines
    assert "HTTP Request" in exported, exported
    for secret in ("hook-pass", "abc-path-s3cret", "query-s3cret"):
        assert secret not in json_lines, json_lines
        assert secret not in exported, exported
    tel.shutdown(timeout_millis=500)


def test_independent_configure_leaves_the_global_handle_alone() -> None:
    """configure(set_global=False) with other settings neither replaces nor shuts the global."""
    from paca_otel._setup import configure, get_telemetry

    main = configure(service_name="global-one", system_metrics=False, prometheus_port=0)
    other = configure(
        service_name="independent", system_metrics=False, metrics_exporter="none",
        set_global=False,
    )  # fmt: skip
    try:
        assert other is not main
        assert get_telemetry() is main
        assert not main.is_shutdown
    finally:
        other.shutdown()
        main.shutdown()


def test_exemplars_are_off_unless_something_exports_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without an OTLP metrics exporter no exemplar is computed; the env variable still rules."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    from paca_otel.config import load_settings
    from paca_otel.telemetry._providers import _exemplar_filter

    monkeypatch.delenv("OTEL_METRICS_EXEMPLAR_FILTER", raising=False)
    prometheus_only = load_settings(metrics_exporter="prometheus")
    assert isinstance(_exemplar_filter(prometheus_only), AlwaysOffExemplarFilter)
    otlp = load_settings(metrics_exporter="otlp", otlp_endpoint="http://127.0.0.1:4317")
    assert _exemplar_filter(otlp) is None
    monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", "always_on")
    assert _exemplar_filter(prometheus_only) is None


def test_drops_counted_during_shutdown_do_not_ask_a_shut_down_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The drop counter exists from configure on: an exporter failing during shutdown counts
    its loss without the SDK's "A shutdown MeterProvider can not provide a Meter" warning."""
    from paca_otel._internal import drops

    tel = configure(**_quiet())
    tel.meter_provider.shutdown()
    with caplog.at_level(logging.WARNING):
        drops.add("export_failure_log")
    assert not [r for r in caplog.records if "shutdown" in r.getMessage()], caplog.text
