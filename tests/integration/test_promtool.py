"""``promtool check metrics`` lints the exposition text paca-otel serves.

promtool is Prometheus' own linter for the text format: HELP/TYPE lines, counter suffixes,
suffixes reserved for histograms. Running it on what we serve catches exposition problems that
a scraping Prometheus silently tolerates. The checks are split by who produces the series
(system gauges, custom metrics with and without descriptions) so a failure points at its
owner; any problem promtool reports fails the test and is printed whole, never filtered.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx
import pytest

from paca_otel._setup import configure
from paca_otel.signals._metrics import MetricsCollector
from tests.peers import free_port, require_binary

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(30)]


def promtool_check(exposition: str) -> subprocess.CompletedProcess[str]:
    """Pipe exposition text to ``promtool check metrics``; return the finished process."""
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def serve_and_fetch(system_metrics: bool, record: Callable[[MetricsCollector], None]) -> str:
    """Configure the standalone Prometheus endpoint, record metrics, return one scrape's text."""
    require_binary("promtool")  # skip/fail before starting anything
    port = free_port()
    configure(
        service_name="paca-it-promtool",
        traces_exporter="none",
        metrics_exporter="prometheus",
        logs_exporter="none",
        logs=False,
        prometheus_host="127.0.0.1",
        prometheus_port=port,
        system_metrics=system_metrics,
    )
    record(MetricsCollector())
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    response.raise_for_status()
    return response.text


def assert_lint_clean(exposition: str) -> None:
    """Fail with promtool's complete findings and the exposition if it reports anything."""
    result = promtool_check(exposition)
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, (
        f"promtool check metrics exit {result.returncode}, findings:\n{findings}\n"
        f"--- exposition ---\n{exposition}"
    )


def test_system_metrics_exposition_passes_promtool() -> None:
    """The system and process gauges paca-otel serves pass promtool's lint."""
    exposition = serve_and_fetch(system_metrics=True, record=lambda _: None)
    assert "system_cpu_utilization" in exposition
    assert "system_memory_usage_bytes" in exposition

    assert_lint_clean(exposition)


def test_described_custom_metrics_pass_promtool() -> None:
    """Custom metrics of every kind, recorded with descriptions, pass promtool's lint."""

    def record(collector: MetricsCollector) -> None:
        collector.increment("orders_total", 3, {"shop": "a"}, description="Orders placed.")
        collector.set_gauge("queue_depth", 7, {"queue": "mail"}, description="Queued mails.")
        collector.observe(
            "checkout_duration", 0.2, {"shop": "a"}, unit="s", description="Checkout time."
        )
        collector.add("sessions_active", 2, {"shop": "a"}, description="Open sessions.")

    exposition = serve_and_fetch(system_metrics=False, record=record)
    assert "orders_total" in exposition
    assert "checkout_duration_seconds_bucket" in exposition

    assert_lint_clean(exposition)


def test_undescribed_custom_metrics_pass_promtool() -> None:
    """Custom metrics recorded by name alone (the seed's API) still pass promtool's lint."""

    def record(collector: MetricsCollector) -> None:
        collector.increment("orders_total", 3, {"shop": "a"})
        collector.set_gauge("queue_depth", 7, {"queue": "mail"})
        collector.observe("checkout_duration_seconds", 0.2, {"shop": "a"})
        collector.add("sessions_active", 2, {"shop": "a"})

    exposition = serve_and_fetch(system_metrics=False, record=record)
    assert "orders_total" in exposition

    assert_lint_clean(exposition)


def test_route_exposition_passes_promtool() -> None:
    """What the app's /metrics route writes by hand (not prometheus_client) passes the lint."""
    from paca_otel.pipeline._promtext import exposition

    require_binary("promtool")
    telemetry = configure(
        service_name="paca-it-promtool",
        traces_exporter="none",
        metrics_exporter="prometheus",
        logs_exporter="none",
        logs=False,
        prometheus_host="127.0.0.1",
        prometheus_port=free_port(),
        system_metrics=True,
    )
    collector = MetricsCollector()
    collector.increment("orders_total", 3, {"shop": 'a"\\b'}, description="Orders placed.")
    collector.observe("checkout_duration", 0.2, {"shop": "a"}, unit="s")
    collector.set_gauge("queue_depth", 7, {"queue": "caf\u00e9"})
    assert telemetry.prometheus_registry is not None
    body, content_type = exposition(telemetry.prometheus_registry, "")
    assert content_type.startswith("text/plain; version=0.0.4")
    assert "checkout_duration_seconds_bucket" in body.decode()

    assert_lint_clean(body.decode())


def test_promtool_rejects_a_bad_exposition() -> None:
    """promtool flags a counter without ``_total``, so the passing checks above mean something."""
    bad = "# HELP orders Orders.\n# TYPE orders counter\norders 1\n"

    result = promtool_check(bad)

    assert result.returncode != 0
    assert "_total" in result.stdout + result.stderr
