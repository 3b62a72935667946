"""The /metrics exposition: promtool-friendly names and a scrape that cannot fail."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest

from paca_otel._demo import create_app
from paca_otel.pipeline._collection import Collection
from paca_otel.pipeline._prometheus import CollectionCollector, exposition_name


def _exposed(record: Callable[[MeterProvider], None]) -> str:
    collection = Collection()
    provider = MeterProvider(metric_readers=[collection])
    try:
        record(provider)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CollectionCollector(collection.collect_now))
        return generate_latest(registry).decode("utf-8")
    finally:
        provider.shutdown()


def test_count_gauges_are_renamed() -> None:
    """A ``*_count`` gauge is exposed as ``<stem>s``; histograms keep their names."""
    assert exposition_name("process_thread_count", "gauge") == "process_threads"
    assert exposition_name("http_duration_count", "histogram") == "http_duration_count"

    def record(provider: MeterProvider) -> None:
        provider.get_meter("t").create_gauge("process.thread.count").set(3, {"a": "x"})

    assert 'process_threads{a="x",' in _exposed(record)


def test_unencodable_label_values_and_help_do_not_fail_the_scrape() -> None:
    """A lone surrogate in a label value or help text becomes U+FFFD instead of a failed scrape."""

    def record(provider: MeterProvider) -> None:
        gauge = provider.get_meter("t").create_gauge("dev", unit="By", description="help \udcff")
        gauge.set(1, {"device": "sd\udcff", "ok": "caf\u00e9"})

    text = _exposed(record)
    assert 'device="sd\ufffd",ok="caf\u00e9"' in text
    assert "# HELP dev_bytes help \ufffd" in text


async def test_raw_api_surrogate_keeps_both_metrics_endpoints_serving() -> None:
    """A surrogate recorded through the raw OTel API cannot make /metrics or the JSON API 500."""
    from paca_otel.security import generate_token

    token = generate_token()  # the monitoring API needs one since issue 8
    app = create_app(traffic=False, metrics_exporter="prometheus", admin_token=token)
    async with app.router.lifespan_context(app):
        counter = metrics.get_meter("raw").create_counter("paca_test.raw")
        counter.add(1, {"iface": "eth\udcff"})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            scrape = await http.get("/metrics")
            snapshot = await http.get(
                "/monitoring/metrics", headers={"Authorization": f"Bearer {token}"}
            )
    assert scrape.status_code == 200
    assert 'iface="eth\ufffd"' in scrape.text
    assert snapshot.status_code == 200
    points = [p for p in snapshot.json()["metrics"] if p["name"] == "paca_test.raw"]
    assert points[0]["labels"] == {"iface": "eth\ufffd"}
