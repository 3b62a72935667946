"""The Prometheus source answers range queries in paca-otel's names from a real Prometheus.

A real server scrapes a real paca-otel ``/metrics`` endpoint (the integration fixtures), so
the name translation (units, ``_total``, label sanitising, histograms, aliases) is checked
against what the OTel Prometheus exporter actually exposes, not against our own idea of it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry import metrics

from paca_otel._setup import configure
from paca_otel.analysis._matchers import MatcherError
from paca_otel.analysis.prometheus_source import (
    PrometheusSource,
    PrometheusSourceError,
    exposed_label,
    exposed_name,
    unit_suffix,
)
from paca_otel.analysis.source import LabelMatcher, RangeSeries, SeriesSource
from tests.integration.conftest import (
    PrometheusServer,
    prometheus_server,  # noqa: F401  # the fixture, by name
    wait_until,
)
from tests.peers import free_port


def test_names_and_units_translate_as_the_exporter_writes_them() -> None:
    """Dots and other characters become underscores; OTel units become name suffixes."""
    assert exposed_name("system.cpu.utilization") == "system_cpu_utilization"
    assert exposed_name("http.server.request-duration") == "http_server_request_duration"
    assert exposed_name("9lives") == "_lives"
    assert exposed_label("cpu.mode") == "cpu_mode"
    assert exposed_label("a__b") == "a_b"
    assert unit_suffix("By") == "bytes"
    assert unit_suffix("s") == "seconds"
    assert unit_suffix("1") == ""
    assert unit_suffix("{request}") == ""
    assert unit_suffix("m/s") == "meters_per_second"
    assert unit_suffix("By/s") == "bytes_per_second"


def test_bad_urls_and_unreachable_servers_raise_clear_errors() -> None:
    """A non-HTTP URL, a closed port and bad arguments: PrometheusSourceError, no secrets."""
    with pytest.raises(PrometheusSourceError, match="must be http"):
        PrometheusSource("ftp://prometheus:9090")
    source = PrometheusSource(f"http://user:hunter2@127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusSourceError, match="unreachable") as info:
        source.names()
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(source)
    with pytest.raises(PrometheusSourceError, match="end >= start"):
        source.query_range("m", start=10, end=0, step=1)
    with pytest.raises(PrometheusSourceError, match="step=nan"):
        source.query_range("m", start=0, end=10, step=math.nan)
    with pytest.raises(MatcherError, match="op one of"):
        source.query_range("cpu_usage", [LabelMatcher("a", "==", "b")], start=0, end=1, step=1)  # type: ignore[arg-type]  # the bad op is the test
    source.close()


def _points(found: list[RangeSeries]) -> list[float]:
    return [point.value for series in found for point in series.points]


@pytest.mark.peer("prometheus")
@pytest.mark.timeout(90)
def test_reads_paca_otel_metrics_from_a_real_prometheus(
    prometheus_server: Callable[[str], PrometheusServer],  # noqa: F811  # the imported fixture
) -> None:
    """Counters, unit-suffixed gauges, label matchers, histograms and aliases all resolve."""
    port = free_port()
    configure(
        service_name="paca-it-source",
        traces_exporter="none",
        metrics_exporter="prometheus",
        logs_exporter="none",
        logs=False,
        prometheus_host="127.0.0.1",
        prometheus_port=port,
        system_metrics=True,
    )
    meter = metrics.get_meter("paca-it-source")
    meter.create_counter("shop.orders", unit="{order}").add(3, {"shop.id": "a"})
    duration = meter.create_histogram(
        "job.duration", unit="s", explicit_bucket_boundaries_advisory=[0.1, 0.25, 0.5, 1.0]
    )
    stop = threading.Event()

    def observe() -> None:  # rates need increments between scrapes
        while not stop.wait(0.05):
            duration.record(0.2)

    worker = threading.Thread(target=observe, daemon=True)
    worker.start()
    server = prometheus_server(f"127.0.0.1:{port}")
    source = PrometheusSource(server.url, rate_window=5, names_ttl=0)
    assert isinstance(source, SeriesSource)
    try:
        _check_names_units_and_labels(source)
        _check_histograms(source)
        _check_long_ranges_and_errors(source)
    finally:
        stop.set()
        worker.join(5)
        source.close()


def _query(source: PrometheusSource, name: str, *matchers: LabelMatcher) -> list[RangeSeries]:
    now = time.time()
    return source.query_range(name, matchers, start=now - 30, end=now, step=1)


def _wait_for(source: PrometheusSource, name: str, *matchers: LabelMatcher) -> list[RangeSeries]:
    """Poll until ``name`` has a number (the first scrapes land seconds after start)."""
    found: list[RangeSeries] = []

    def has() -> bool:
        nonlocal found
        found = _query(source, name, *matchers)
        return bool(found) and not all(math.isnan(v) for v in _points(found))

    assert wait_until(has, 30, 0.25), (name, found)
    return found


def _check_names_units_and_labels(source: PrometheusSource) -> None:
    found = _wait_for(source, "shop.orders")
    assert source.resolve("shop.orders") == "shop_orders_total"
    assert {s.labels.get("shop_id") for s in found} == {"a"}
    assert set(_points(found)) == {3.0}
    assert "shop_orders_total" in source.names()

    found = _wait_for(
        source, "system.memory.usage", LabelMatcher("system.memory.state", "=", "used")
    )
    assert source.resolve("system.memory.usage") == "system_memory_usage_bytes"
    assert all(value > 0 for value in _points(found))

    found = _wait_for(source, "system.cpu.utilization", LabelMatcher("cpu.mode", "=~", "idle|user"))
    assert {s.labels["cpu_mode"] for s in found} <= {"idle", "user"}
    assert all(0.0 <= value <= 1.0 for value in _points(found))

    found = _wait_for(source, "cpu_usage")  # an alias: the PromQL that rules export writes
    assert len(found) == 1
    assert all(0.0 <= value <= 100.0 for value in _points(found))
    assert _query(source, "no.such.metric") == []


def _check_histograms(source: PrometheusSource) -> None:
    assert _wait_for(source, "job.duration.count")[0].points[-1].value > 0
    assert _wait_for(source, "job.duration.sum")[0].points[-1].value > 0
    found = _wait_for(source, "job.duration.p50")
    finite = [value for value in _points(found) if not math.isnan(value)]
    assert all(0.1 <= value <= 0.25 for value in finite), finite  # in the 0.1..0.25 bucket


def _check_long_ranges_and_errors(source: PrometheusSource) -> None:
    first = _query(source, "shop.orders")[0].points[0].timestamp
    assert wait_until(lambda: time.time() - first > 13, 20, 0.25)
    now = time.time()  # 12,000 steps of 1 ms: two requests, stitched in order
    (orders,) = source.query_range("shop.orders", start=now - 12, end=now, step=0.001)
    stamps = [point.timestamp for point in orders.points]
    assert len(stamps) > 11_000
    assert stamps == sorted(set(stamps))
    with pytest.raises(PrometheusSourceError, match="HTTP 400"):
        source.query_range(
            "shop.orders", [LabelMatcher("shop.id", "=~", "(")], start=now, end=now, step=1
        )
