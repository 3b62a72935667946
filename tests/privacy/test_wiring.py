"""configure() scrubs every surface it emits: exported spans, logs and metric labels."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from paca_otel import MetricsCollector, configure
from paca_otel.testing import reset

SECRET = "hunter2-s3cr3t-value"


@pytest.fixture(autouse=True)
def _clean() -> None:
    reset()


def test_exported_span_attributes_are_scrubbed(capfd: pytest.CaptureFixture[str]) -> None:
    """A ``password`` span attribute reaches the exporter as the marker, never the value."""
    telemetry = configure(traces_exporter="console", metrics_exporter="none", system_metrics=False)
    tracer = telemetry.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("login", attributes={"password": SECRET, "user": "ann"}):
        pass
    telemetry.shutdown()
    out = capfd.readouterr().out
    assert "login" in out
    assert SECRET not in out
    assert "[REDACTED]" in out


def test_metric_label_secrets_never_reach_the_scrape() -> None:
    """An ``api_key`` label is scrubbed once, at record time, for /metrics and the store."""
    telemetry = configure(metrics_exporter="prometheus", prometheus_port=0, system_metrics=False)
    try:
        MetricsCollector().increment("logins", 1, {"api_key": SECRET, "shop": "a"})
        assert telemetry.prometheus_registry is not None
        text = generate_latest(telemetry.prometheus_registry).decode()
        assert 'shop="a"' in text
        assert SECRET not in text
    finally:
        telemetry.shutdown()


def test_log_extras_are_scrubbed_in_the_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A ``token`` log extra is written as the marker on the JSON stderr lines."""
    telemetry = configure(metrics_exporter="none", system_metrics=False, logs=True)
    try:
        logging.getLogger("shop").warning("signed in", extra={"token": SECRET})
    finally:
        telemetry.shutdown()
    err = capsys.readouterr().err
    assert "signed in" in err
    assert SECRET not in err


def test_scrubbing_can_be_turned_off() -> None:
    """scrub_enabled=False leaves labels as recorded (an explicit choice)."""
    telemetry = configure(
        metrics_exporter="prometheus", prometheus_port=0, system_metrics=False, scrub_enabled=False
    )
    try:
        MetricsCollector().increment("logins_raw", 1, {"api_key": "visible"})
        assert telemetry.prometheus_registry is not None
        assert "visible" in generate_latest(telemetry.prometheus_registry).decode()
    finally:
        telemetry.shutdown()


def test_notification_payloads_are_scrubbed_before_they_are_stored() -> None:
    """An annotation holding a secret is scrubbed in the outbox, so no channel sends it."""
    from paca_otel._runtime import default_runtime
    from paca_otel.rules._models import AlertEvent, AlertState, Notification, Severity

    runtime = default_runtime().alerting()
    event = AlertEvent(
        rule="r",
        state=AlertState.FIRING,
        labels={"alertname": "r", "session": SECRET},
        annotations={"summary": f"Authorization: Bearer {SECRET}"},
        value=1.0,
        severity=Severity.WARNING,
        starts_at=1.0,
    )
    runtime.outbox.enqueue(Notification("log", "g", (event,), created_at=1.0))
    (stored,) = runtime.outbox.pending_page("log")
    assert SECRET not in repr(stored.notification)
