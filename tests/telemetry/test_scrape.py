"""The standalone Prometheus server answers as the app's ``/metrics`` route and as
prometheus_client's ``start_http_server`` did: same bodies, gzip, tokens, quiet, busy port."""

from __future__ import annotations

import gzip
import http.client
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric as Family
from starlette.applications import Starlette

from paca_otel import configure
from paca_otel.config import PacaOtelSettings
from paca_otel.pipeline._prometheus import CollectionCollector
from paca_otel.security import generate_token, hash_token
from paca_otel.telemetry._scrape import _scrape_endpoint, _start_prometheus
from tests.peers import free_port

PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPTS = {"curl": "", "prometheus 2": PROMETHEUS_2, "text 1.0.0": "text/plain;version=1.0.0"}
T0, T1 = 1_000_000_000, 2_000_000_000
CUMULATIVE = AggregationTemporality.CUMULATIVE


class _Static:
    """A user's collector of fixed families, next to paca-otel's."""

    def __init__(self, families: Iterable[Family]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Family]:
        return self.families


def _data() -> MetricsData:
    """Fixed points of every kind (a scrape renders the same bytes each time)."""
    counts = Sum(
        [NumberDataPoint({"route": f"/r{i}", "method": "GET"}, T0, T1, i) for i in range(200)],
        CUMULATIVE,
        is_monotonic=True,
    )
    bounds = [0.005, 0.1, 1.0]
    durations = Histogram(
        [HistogramDataPoint({"route": "/a"}, T0, T1, 10, 7.5, [1, 2, 3, 4], bounds, 0.0, 9.0)],
        CUMULATIVE,
    )
    queue = Gauge([NumberDataPoint({"queue": 'm"a\nil'}, T0, T1, 4.0)])
    metrics = [
        Metric("app.requests", "Requests", "{request}", counts),
        Metric("http.server.request.duration", "", "s", durations),
        Metric("app.queue", "", "", queue),
    ]
    scope = ScopeMetrics(InstrumentationScope("shop", "1.0"), metrics, "")
    return MetricsData([ResourceMetrics(Resource({"service.name": "shop"}), [scope], "")])


@pytest.fixture
def registry() -> CollectorRegistry:
    """paca-otel's collector over fixed data, between two collectors of a user's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static([CounterMetricFamily("jobs", "Jobs", value=3)]))
    data = _data()
    registry.register(CollectionCollector(lambda: data))
    registry.register(_Static([CounterMetricFamily("late", "Late", value=1)]))
    return registry


Serve = Callable[..., str]


@pytest.fixture
def standalone() -> Iterator[Serve]:
    """Start the standalone server on 127.0.0.1 (settings as keywords); its base URL."""
    started: list[Any] = []

    def serve(registry: CollectorRegistry, **settings: Any) -> str:
        port = free_port()
        served = _start_prometheus(PacaOtelSettings(prometheus_port=port, **settings), registry)
        assert served is not None
        started.append(served)
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _route(registry: CollectorRegistry, **settings: Any) -> httpx.AsyncClient:
    """An httpx client of a Starlette app whose ``/metrics`` is paca-otel's route."""
    app = Starlette()
    app.add_route("/metrics", _scrape_endpoint(lambda: registry, PacaOtelSettings(**settings)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://app")


def _raw(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
    """Status, headers (but Date) and undecoded body of one request, as http.client sees it."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    path = "/" + url.removeprefix("http://").partition("/")[2]
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        head = {k: v for k, v in response.getheaders() if k != "Date"}
        return response.status, head, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("accept", list(ACCEPTS.values()), ids=list(ACCEPTS))
async def test_standalone_body_equals_the_app_routes(
    registry: CollectorRegistry, standalone: Serve, accept: str
) -> None:
    """Text and OpenMetrics: the same bytes and content type as the app's /metrics."""
    url = standalone(registry)
    async with _route(registry) as client:
        routed = await client.get("/metrics", headers={"Accept": accept})
    served = httpx.get(f"{url}/metrics", headers={"Accept": accept})
    assert served.status_code == routed.status_code == 200
    assert served.headers["content-type"] == routed.headers["content-type"]
    assert served.content == routed.content
    assert b'app_requests_total{method="GET",otel_scope_name="shop"' in served.content


def test_standalone_answers_as_prometheus_client_server(
    registry: CollectorRegistry, standalone: Serve
) -> None:
    """Any path, favicon, OPTIONS, 405, gzip: what start_http_server answered, byte for byte."""
    ours = standalone(registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        theirs = f"http://127.0.0.1:{port}"
        cases = [
            ("GET", "/metrics", {}), ("GET", "/", {}), ("GET", "/any/path", {}),
            ("GET", "/favicon.ico", {}), ("OPTIONS", "/metrics", {}), ("POST", "/metrics", {}),
            ("HEAD", "/metrics", {}), ("GET", "/metrics", {"Accept": PROMETHEUS_2}),
        ]  # fmt: skip
        for method, path, headers in cases:
            assert _raw(ours + path, method, headers) == _raw(theirs + path, method, headers)
        status, head, body = _raw(f"{ours}/metrics", headers={"Accept-Encoding": "gzip"})
        plain = _raw(f"{theirs}/metrics", headers={"Accept-Encoding": "gzip"})
        assert (status, head["Content-Encoding"]) == (200, plain[1]["Content-Encoding"])
        assert gzip.decompress(body) == gzip.decompress(plain[2])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_name_parameter_keeps_the_named_samples(
    registry: CollectorRegistry, standalone: Serve
) -> None:
    """?name[]= keeps the named samples of every collector.

    prometheus_client's server kept none here: its registry looks collectors up by the names
    they describe, and these describe none.
    """
    url = standalone(registry)
    text = httpx.get(f"{url}/metrics?name[]=app_queue&name[]=late_total").text
    assert [line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[0] != "#"] == [
        "app_queue",
        "late_total",
    ]


def test_standalone_gzips_when_the_client_accepts_it(
    registry: CollectorRegistry, standalone: Serve
) -> None:
    """Accept-Encoding: gzip gets the same exposition gzipped, with its compressed length."""
    url = standalone(registry)
    plain = _raw(f"{url}/metrics", headers={"Accept": PROMETHEUS_2})
    status, head, body = _raw(
        f"{url}/metrics", headers={"Accept": PROMETHEUS_2, "Accept-Encoding": "br, GZIP;q=0.5"}
    )
    assert status == 200
    assert head["Content-Encoding"] == "gzip"
    assert int(head["Content-Length"]) == len(body) < len(plain[2]) / 3
    assert gzip.decompress(body) == plain[2]
    assert "Content-Encoding" not in plain[1]


async def test_metrics_auth_on_the_standalone_server(
    registry: CollectorRegistry, standalone: Serve
) -> None:
    """401 without or with a wrong token, 200 with one, 429 after too many failures, as routed."""
    token = generate_token()
    settings = {
        "metrics_auth": True, "api_tokens": (f"prometheus:viewer:{hash_token(token)}",),
        "auth_failure_limit": 2, "auth_failure_window": 600,
    }  # fmt: skip
    url = f"{standalone(registry, **settings)}/metrics"
    good = {"Authorization": f"Bearer {token}"}
    bad = {"Authorization": "Bearer paca_wrong"}
    async with _route(registry, **settings) as client:
        for headers in ({}, bad, good, bad, bad, good):
            routed = await client.get("/metrics", headers=headers)
            served = httpx.get(url, headers=headers)
            assert served.status_code == routed.status_code
            assert served.content == routed.content
            for name in ("content-type", "www-authenticate", "retry-after"):
                assert served.headers.get(name) == routed.headers.get(name)
    assert [httpx.get(url, headers=h).status_code for h in ({}, bad, good)] == [429, 429, 429]
    missing = httpx.get(url)
    assert 0 < int(missing.headers["retry-after"]) <= 601
    assert missing.text == "unauthorized\n"


def test_busy_port_warns_once_and_the_app_starts(caplog: pytest.LogCaptureFixture) -> None:
    """A port in use costs one warning naming it; configure() returns a live handle."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="paca_otel"):
            telemetry = configure(
                metrics_exporter="prometheus", prometheus_port=port, system_metrics=False
            )
    warnings = [r.getMessage() for r in caplog.records if "Prometheus metrics" in r.getMessage()]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}" in warnings[0]
    assert not telemetry.is_shutdown
    assert telemetry._prometheus_server is None


def test_standalone_server_is_quiet_and_threaded(
    registry: CollectorRegistry, standalone: Serve, capfd: pytest.CaptureFixture[str]
) -> None:
    """Scrapes write no access log line, and run in daemon threads beside the serving one."""
    url = standalone(registry)
    capfd.readouterr()
    results: list[int] = []
    scrapers = [
        threading.Thread(target=lambda: results.append(httpx.get(url, timeout=10).status_code))
        for _ in range(4)
    ]
    for scraper in scrapers:
        scraper.start()
    for scraper in scrapers:
        scraper.join(timeout=20)
    assert results == [200] * 4
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert any(t.name == "paca-otel-prometheus" and t.daemon for t in threading.enumerate())
