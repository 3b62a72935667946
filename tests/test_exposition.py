"""Tests for paca_otel.exposition: promtool-friendly names and a scrape that cannot fail."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from opentelemetry import metrics
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from paca_otel.demo import create_app
from paca_otel.exposition import PromLintCollector, exposition_name


class _Families(Collector):
    """A source registry's collector yielding fixed families."""

    def __init__(self, *families: GaugeMetricFamily) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _exposed(*families: GaugeMetricFamily) -> str:
    source = CollectorRegistry(auto_describe=False)
    source.register(_Families(*families))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PromLintCollector(source))
    return generate_latest(registry).decode("utf-8")


def test_count_gauges_are_renamed() -> None:
    """A ``*_count`` gauge is exposed as ``<stem>s``; histograms keep their names."""
    assert exposition_name("process_thread_count", "gauge") == "process_threads"
    assert exposition_name("http_duration_count", "histogram") == "http_duration_count"
    family = GaugeMetricFamily("process_thread_count", "threads", labels=["a"])
    family.add_metric(["x"], 3)
    assert 'process_threads{a="x"} 3.0' in _exposed(family)


def test_unencodable_label_values_and_help_do_not_fail_the_scrape() -> None:
    """A lone surrogate in a label value or help text becomes U+FFFD instead of a failed scrape."""
    family = GaugeMetricFamily("dev_bytes", "help \udcff", labels=["device", "ok"])
    family.add_metric(["sd\udcff", "caf\u00e9"], 1)
    text = _exposed(family)
    assert 'dev_bytes{device="sd\ufffd",ok="caf\u00e9"} 1.0' in text
    assert "# HELP dev_bytes help \ufffd" in text


async def test_raw_api_surrogate_keeps_both_metrics_endpoints_serving() -> None:
    """A surrogate recorded through the raw OTel API cannot make /metrics or the JSON API 500."""
    app = create_app(traffic=False, metrics_exporter="prometheus")
    async with app.router.lifespan_context(app):
        counter = metrics.get_meter("raw").create_counter("paca_test.raw")
        counter.add(1, {"iface": "eth\udcff"})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            scrape = await http.get("/metrics")
            snapshot = await http.get("/monitoring/metrics")
    assert scrape.status_code == 200
    assert 'iface="eth\ufffd"' in scrape.text
    assert snapshot.status_code == 200
    points = [p for p in snapshot.json()["metrics"] if p["name"] == "paca_test.raw"]
    assert points[0]["labels"] == {"iface": "eth\ufffd"}
