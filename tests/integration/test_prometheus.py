"""A real Prometheus server scrapes paca-otel's standalone endpoint and answers PromQL about it.

The end-to-end promise to users running Prometheus: ``configure(metrics_exporter="prometheus")``
serves a scrape endpoint whose system gauges and custom metrics land in Prometheus under the
names the OTel Prometheus exporter documents, with their labels intact.
"""

from __future__ import annotations

from typing import Any

import pytest

from paca_otel.setup import configure
from paca_otel.signals.metrics import MetricsCollector
from tests.integration.conftest import PrometheusServer
from tests.peers import free_port

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(40)]


def _values(series: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in series]


@pytest.fixture
def scraped(prometheus_server: Any) -> PrometheusServer:
    """paca-otel configured for Prometheus, with real Prometheus scraping it every second."""
    port = free_port()
    configure(
        service_name="paca-it-prom",
        traces_exporter="none",
        metrics_exporter="prometheus",
        logs_exporter="none",
        logs=False,
        prometheus_host="127.0.0.1",
        prometheus_port=port,
        system_metrics=True,
    )
    server: PrometheusServer = prometheus_server(f"127.0.0.1:{port}")
    return server


async def test_custom_counter_reaches_prometheus_with_its_label(scraped: PrometheusServer) -> None:
    """A counter recorded through MetricsCollector is queryable in Prometheus with its label."""
    collector = MetricsCollector()
    await collector.record_metric("orders_total", 3, {"shop": "a"}, kind="counter")
    await collector.record_metric("orders_total", 2, {"shop": "b"}, kind="counter")

    series = scraped.query('orders_total{job="paca", shop="a"}')

    assert len(series) == 1, series
    assert series[0]["metric"]["shop"] == "a"
    assert _values(series) == [3.0]


async def test_system_cpu_and_memory_series_reach_prometheus(scraped: PrometheusServer) -> None:
    """System CPU utilization and memory usage gauges are scraped under their exporter names."""
    # opentelemetry-exporter-prometheus maps unit "1" to no suffix (its _mapping.py keeps the
    # spec's "_ratio" as a TODO), so utilization has no unit suffix while bytes gets "_bytes".
    cpu = scraped.query('system_cpu_utilization{job="paca"}')
    memory = scraped.query('system_memory_usage_bytes{job="paca"}')

    assert all(0.0 <= value <= 1.0 for value in _values(cpu)), cpu
    assert sum(_values(memory)) > 0, memory


async def test_resource_reaches_prometheus_as_target_info(scraped: PrometheusServer) -> None:
    """The service name is visible in Prometheus through the ``target_info`` series."""
    series = scraped.query('target_info{job="paca"}')

    assert {s["metric"].get("service_name") for s in series} == {"paca-it-prom"}
