"""scratch."""
from __future__ import annotations
import time
import httpx
from prometheus_client import start_http_server
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from tests.peers import free_port


def test_prom(prometheus_server):
    """scratch."""
    port = free_port()
    reader = PrometheusMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        c = mp.get_meter("x").create_counter("orders", unit="1")
        c.add(3, {"shop": "a"})
        prom = prometheus_server(f"127.0.0.1:{port}")
        t0 = time.monotonic()
        print(prom.query('orders_total{shop="a"}'), time.monotonic() - t0)
        print(httpx.get(f"http://127.0.0.1:{port}/metrics").text[:3000])
    finally:
        server.shutdown(); server.server_close(); mp.shutdown()


def test_rotel(rotel_collector):
    """scratch."""
    print(rotel_collector)
    assert False
