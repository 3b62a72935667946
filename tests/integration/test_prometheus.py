"""A real Prometheus server scrapes paca-otel's standalone endpoint and answers PromQL about it.

The end-to-end promise to users running Prometheus: ``configure(metrics_exporter="prometheus")``
serves a scrape endpoint whose system gauges and custom metrics land in Prometheus under the
names the OTel Prometheus exporter produces, with their labels and the service's resource.
One test, one Prometheus: its service discovery takes ~5 s to hand over the first target, so
each extra server would cost that again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from paca_otel.setup import configure
from paca_otel.signals.metrics import MetricsCollector
from tests.integration.conftest import PrometheusServer
from tests.peers import free_port

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(40)]


def _values(series: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in series]


async def test_prometheus_scrapes_system_and_custom_metrics(
    prometheus_server: Callable[[str], PrometheusServer],
) -> None:
    """PromQL returns our system CPU and memory series, a labelled counter and the resource."""
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
    collector = MetricsCollector()
    await collector.record_metric("orders_total", 3, {"shop": "a"}, kind="counter")
    await collector.record_metric("orders_total", 2, {"shop": "b"}, kind="counter")
    prometheus = prometheus_server(f"127.0.0.1:{port}")

    orders = prometheus.query('orders_total{job="paca", shop="a"}')
    # opentelemetry-exporter-prometheus maps unit "1" to no suffix (its _mapping.py keeps the
    # spec's "_ratio" as a TODO), so utilization has no unit suffix while bytes gets "_bytes".
    cpu = prometheus.query('system_cpu_utilization{job="paca"}')
    memory = prometheus.query('system_memory_usage_bytes{job="paca"}')
    target_info = prometheus.query('target_info{job="paca"}')

    assert [s["metric"]["shop"] for s in orders] == ["a"], orders
    assert _values(orders) == [3.0]
    assert cpu, cpu
    assert all(0.0 <= value <= 1.0 for value in _values(cpu)), cpu
    assert sum(_values(memory)) > 0, memory
    assert {s["metric"].get("service_name") for s in target_info} == {"paca-it-prom"}
