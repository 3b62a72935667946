"""Route analysis: slowest routes, error hot spots and latency regressions from RED series."""

from __future__ import annotations

import random

import pytest

from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.analysis._red import Period, RouteStats, read_red
from paca_otel.analysis.routes import (
    error_hotspots,
    latency_regressions,
    latency_shifts,
    mann_whitney,
    slowest_routes,
)

DAY = 86_400
DEPLOY = 14 * 3600


def add_route(
    source: MemorySeriesSource,
    route: str,
    method: str,
    *,
    rate: float,
    error_ratio: float,
    p95: float,
    p95_after: float | None = None,
    seed: int = 1,
) -> None:
    rng = random.Random(seed)
    labels = {"route": route, "method": method} if route else {}
    times = range(0, DAY, 60)
    source.add("request_rate", labels, [(t, rate) for t in times])
    source.add("request_count", labels, [(t, rate * 60) for t in times])
    source.add("error_count", labels, [(t, rate * 60 * error_ratio) for t in times])
    latency = [
        (t, (p95_after if p95_after is not None and t >= DEPLOY else p95) * rng.uniform(0.9, 1.1))
        for t in times
    ]
    source.add("latency_p95", labels, latency)


def scenario() -> MemorySeriesSource:
    source = MemorySeriesSource()
    add_route(source, "/items", "GET", rate=20, error_ratio=0.001, p95=0.05, seed=1)
    add_route(source, "/search", "GET", rate=5, error_ratio=0.002, p95=0.12, p95_after=0.40, seed=2)
    add_route(source, "/pay", "POST", rate=2, error_ratio=0.08, p95=0.30, seed=3)
    add_route(source, "", "", rate=27, error_ratio=0.0069, p95=0.1, seed=4)
    return source


def test_read_red_from_aliases() -> None:
    """Totals integrate the rate; errors use the count ratio; latency keeps its series."""
    stats = {s.name: s for s in read_red(scenario(), Period(0, DAY), step=300)}
    assert set(stats) == {"all routes", "GET /items", "GET /search", "POST /pay"}
    pay = stats["POST /pay"]
    assert pay.requests == pytest.approx(2 * DAY, rel=0.01)
    assert pay.error_ratio == pytest.approx(0.08)
    assert pay.p95 == pytest.approx(0.30, rel=0.05)
    assert len(pay.latency) == DAY // 300


def test_slowest_routes_rank_by_typical_p95() -> None:
    """/pay (300 ms) is slowest; the total is not a route; tiny routes are left out."""
    stats = read_red(scenario(), Period(0, DAY), step=300)
    ranked = slowest_routes(stats, top=2)
    assert [s.name for s in ranked] == ["POST /pay", "GET /search"]
    assert all(s.route for s in ranked)
    assert slowest_routes(stats, min_requests=1e9) == []


def test_error_hotspot_is_the_failing_route() -> None:
    """Only /pay fails far more than the service's overall ratio."""
    hotspots = error_hotspots(read_red(scenario(), Period(0, DAY), step=300))
    assert [h.stats.name for h in hotspots] == ["POST /pay"]
    assert hotspots[0].z > 3
    assert hotspots[0].expected_ratio == pytest.approx(0.0069, rel=0.01)


def test_latency_regression_between_two_periods() -> None:
    """/search is 3x slower after the deploy; the other routes are unchanged."""
    found = latency_regressions(scenario(), Period(0, DEPLOY - 1), Period(DEPLOY, DAY), step=300)
    assert [r.name for r in found] == ["GET /search"]
    assert found[0].change == pytest.approx(2.33, rel=0.1)
    assert found[0].p_value < 1e-6


def test_latency_shift_inside_one_period_finds_the_deploy() -> None:
    """Within the day, the change point on /search's p95 lands at the deploy."""
    found = latency_shifts(read_red(scenario(), Period(0, DAY), step=300))
    assert [r.name for r in found] == ["GET /search"]
    assert abs(found[0].after_period.start - DEPLOY) <= 600


def test_small_or_insignificant_changes_are_not_regressions() -> None:
    """A 5 % change or a 1 ms change is not reported."""
    source = MemorySeriesSource()
    add_route(source, "/a", "GET", rate=5, error_ratio=0, p95=0.1, p95_after=0.105)
    add_route(source, "/b", "GET", rate=5, error_ratio=0, p95=0.001, p95_after=0.002, seed=5)
    assert latency_regressions(source, Period(0, DEPLOY - 1), Period(DEPLOY, DAY), step=300) == []


def test_mann_whitney() -> None:
    """Clearly larger samples give a tiny p-value; equal ones about 0.5."""
    assert mann_whitney([1, 2, 3, 4, 5, 6, 7, 8], [11, 12, 13, 14, 15, 16, 17, 18]) < 0.001
    assert 0.3 < mann_whitney([1, 2, 3, 4] * 3, [1, 2, 3, 4] * 3) < 0.7
    assert mann_whitney([], [1.0]) == 1.0


def test_read_red_from_the_http_histogram() -> None:
    """Without aliases, the http.server.request.duration histogram gives counts and errors."""
    source = MemorySeriesSource()
    base = {"http.route": "/x", "http.request.method": "GET"}
    times = range(0, 3600, 60)
    source.add(
        "http.server.request.duration.count",
        {**base, "http.response.status_code": "200"},
        [(t, 10.0 * t) for t in times],
    )
    source.add(
        "http.server.request.duration.count",
        {**base, "http.response.status_code": "500"},
        [(t, 1.0 * t) for t in times],
    )
    source.add(
        "http.server.request.duration.p95",
        {**base, "http.response.status_code": "200"},
        [(t, 0.2) for t in times],
    )
    stats = {s.name: s for s in read_red(source, Period(0, 3600), step=60)}
    route = stats["GET /x"]
    assert route.source == "histogram"
    assert route.requests == pytest.approx(11 * 3540)
    assert route.error_ratio == pytest.approx(1 / 11)
    assert route.p95 == pytest.approx(0.2)
    assert stats["all routes"].requests == route.requests


def test_route_stats_names() -> None:
    """The total is called 'all routes'."""
    assert RouteStats("", "", 0, 0, None, None).name == "all routes"
    assert RouteStats("", "", 0, 0, None, None).error_ratio == 0.0
