"""A real Prometheus server scrapes paca-otel's standalone endpoint and answers PromQL about it.

The end-to-end promise to users running Prometheus: ``configure(metrics_exporter="prometheus")``
serves a scrape endpoint whose system gauges and custom metrics land in Prometheus under the
names the OTel Prometheus exporter produces, with their labels and the service's resource.
One test, one Prometheus: its service discovery takes ~5 s to hand over the first target, so
each extra server would cost that again.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from paca_otel._setup import configure
from paca_otel.rules._expr import parse
from paca_otel.rules._promql import to_promql
from paca_otel.signals._metrics import MetricsCollector
from tests.integration.conftest import PrometheusServer, wait_until
from tests.peers import free_port

pytestmark = [pytest.mark.peer("prometheus"), pytest.mark.timeout(60)]


def _values(series: list[dict[str, Any]]) -> list[float]:
    return [float(sample["value"][1]) for sample in series]


def _traffic(app: FastAPI, stop: threading.Event) -> None:
    """Requests to /ok and /boom (500) until ``stop``: rates need increments between scrapes.

    In its own thread and event loop, because the Prometheus queries block the test's loop.
    """

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            while not stop.is_set():
                await client.get("/ok")
                await client.get("/boom")
                await asyncio.sleep(0.02)

    asyncio.run(run())


async def test_prometheus_scrapes_system_and_custom_metrics(
    prometheus_server: Callable[[str], PrometheusServer],
) -> None:
    """PromQL sees our system, HTTP and custom series and the resource; exported aliases work."""
    port = free_port()
    telemetry = configure(
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
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> None:
        raise HTTPException(status_code=500, detail="boom")

    telemetry.instrument_app(app, metrics_path=None)
    stop = threading.Event()
    traffic = threading.Thread(target=_traffic, args=(app, stop), daemon=True)
    traffic.start()
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

    for alias in ("cpu_usage", "memory_usage", "disk_usage"):
        series = prometheus.query(to_promql(parse(f'{alias}{{job="paca"}}')))
        assert len(series) == 1, (alias, series)
        assert all(0.0 <= value <= 100.0 for value in _values(series)), (alias, series)

    errors = to_promql(parse('error_rate{route=~"/ok|/boom"}'))
    found: list[dict[str, Any]] = []

    def both_routes_rated() -> bool:  # the first scrapes give 0/0 = NaN until counts move
        nonlocal found
        found = prometheus.query_once(errors)
        return len(found) == 2 and not any(math.isnan(v) for v in _values(found))

    try:
        assert wait_until(both_routes_rated, 20.0, interval=0.25), found
    finally:
        stop.set()
        traffic.join(timeout=10)
    by_route = {(s["metric"]["route"], s["metric"]["method"]): _values([s])[0] for s in found}
    assert by_route == {("/ok", "GET"): 0.0, ("/boom", "GET"): 1.0}
