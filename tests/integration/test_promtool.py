"""``promtool check metrics`` lints the exposition text paca-otel serves.

promtool is Prometheus' own linter for the text format: metric naming, HELP/TYPE lines, counter
suffixes, unit conventions. Running it on what we serve catches exposition problems that a
scraping Prometheus silently tolerates. Any problem it reports fails the test, printed whole.
"""

from __future__ import annotations

import subprocess

import httpx
import pytest

from paca_otel.setup import configure
from paca_otel.signals.metrics import MetricsCollector
from tests.peers import free_port, require_binary

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(30)]


def promtool_check(promtool: str, exposition: str) -> subprocess.CompletedProcess[str]:
    """Pipe exposition text to ``promtool check metrics``; return the finished process."""
    return subprocess.run(  # noqa: S603  # reason: fixed argv of a found binary, no shell
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=15,
        check=False,
    )


def test_promtool_accepts_our_exposition() -> None:
    """Our scrape output, with system gauges and every custom metric kind, passes promtool."""
    promtool = require_binary("promtool")
    port = free_port()
    configure(
        service_name="paca-it-promtool",
        traces_exporter="none",
        metrics_exporter="prometheus",
        logs_exporter="none",
        logs=False,
        prometheus_host="127.0.0.1",
        prometheus_port=port,
        system_metrics=True,
    )
    collector = MetricsCollector()
    collector.increment("orders_total", 3, {"shop": "a"})
    collector.set_gauge("queue_depth", 7, {"queue": "mail"})
    collector.observe("checkout_duration_seconds", 0.2, {"shop": "a"})
    collector.add("sessions_active", 2, {"shop": "a"})

    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
    response.raise_for_status()
    exposition = response.text
    assert "system_cpu_utilization_ratio" in exposition
    assert "orders_total" in exposition

    result = promtool_check(promtool, exposition)

    assert result.returncode == 0, (
        f"promtool check metrics found problems (exit {result.returncode}):\n"
        f"{result.stdout}{result.stderr}\n--- exposition ---\n{exposition}"
    )


def test_promtool_rejects_a_bad_exposition() -> None:
    """promtool flags a counter without ``_total``, so a passing check above means something."""
    promtool = require_binary("promtool")
    bad = "# HELP orders Orders.\n# TYPE orders counter\norders 1\n"

    result = promtool_check(promtool, bad)

    assert result.returncode != 0
    assert "_total" in result.stdout + result.stderr
