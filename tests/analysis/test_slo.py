"""SLO definitions and their status (SLI, error budget remaining, burn rate) over a period."""

from __future__ import annotations

import pytest

from paca_otel.analysis._memory_source import MemorySeriesSource
from paca_otel.analysis._red import Period
from paca_otel.analysis.slo import SLO, slo_status
from paca_otel.errors import ConfigError

DAY = 86_400


def red_source(error_ratio: float, *, p99: float = 0.2) -> MemorySeriesSource:
    """A day of 10 req/s at a fixed error ratio, sampled every minute."""
    source = MemorySeriesSource()
    times = range(0, DAY, 60)
    source.add("request_rate", {}, [(t, 10.0) for t in times])
    source.add("request_count", {}, [(t, 600.0) for t in times])
    source.add("error_count", {}, [(t, 600.0 * error_ratio) for t in times])
    source.add("latency_p99", {}, [(t, p99 if t < DAY * 0.995 else 2.0) for t in times])
    return source


def test_availability_status_and_budget() -> None:
    """0.05 % errors against a 99.9 % objective: met, half the budget left, burn rate 0.5."""
    status = slo_status(red_source(0.0005), SLO("api", 0.999), Period(0, DAY), step=300)
    assert status.total == pytest.approx(864_000, rel=0.01)
    assert status.sli == pytest.approx(0.9995)
    assert status.budget_remaining == pytest.approx(0.5)
    assert status.burn_rate == pytest.approx(0.5)
    assert status.met is True


def test_overspent_budget_is_negative() -> None:
    """0.3 % errors: the objective is missed and the budget is overspent (-2)."""
    status = slo_status(red_source(0.003), SLO("api", 0.999), Period(0, DAY), step=300)
    assert status.met is False
    assert status.budget_remaining == pytest.approx(-2.0)


def test_latency_slo_counts_time_slices() -> None:
    """p99 over the threshold in 0.5 % of minutes: a 99 % latency SLO is met, 99.9 % is not."""
    source = red_source(0.0)
    loose = SLO("lat", 0.99, kind="latency", threshold=0.3)
    tight = SLO("lat", 0.999, kind="latency", threshold=0.3)
    assert slo_status(source, loose, Period(0, DAY), step=60).met is True
    assert slo_status(source, tight, Period(0, DAY), step=60).met is False


def test_no_traffic_gives_no_verdict() -> None:
    """Without requests the SLO has no SLI and no verdict (not a fake 100 %)."""
    status = slo_status(MemorySeriesSource(), SLO("api", 0.999), Period(0, DAY), step=300)
    assert status.sli is None
    assert status.met is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "bad name", "objective": 0.9}, "name"),
        ({"name": "x", "objective": 1.0}, "objective"),
        ({"name": "x", "objective": 0.9, "kind": "latency"}, "threshold"),
        (
            {"name": "x", "objective": 0.9, "kind": "latency", "threshold": 1, "percentile": 90},
            "percentile",
        ),
        ({"name": "x", "objective": 0.9, "kind": "speed"}, "kind"),
    ],
)
def test_invalid_slo_definitions(kwargs: dict[str, object], match: str) -> None:
    """Bad SLO fields fail with a message naming the field."""
    with pytest.raises(ConfigError, match=match):
        SLO(**kwargs)  # type: ignore[arg-type]  # deliberately bad values


def test_describe() -> None:
    """Descriptions read as sentences."""
    assert SLO("a", 0.999).describe() == "99.9 % of requests succeed (all routes)"
    latency = SLO("b", 0.99, kind="latency", threshold=0.3, route="/x", method="GET")
    assert latency.describe() == "p99 under 300 ms in 99 % of time slices (GET /x)"


def test_route_slo_without_method_sums_the_methods() -> None:
    """An SLO on a route without a method counts every method of that route."""
    source = MemorySeriesSource()
    for method, ratio in (("GET", 0.0), ("POST", 0.01)):
        labels = {"route": "/cart", "method": method}
        times = range(0, 3600, 60)
        source.add("request_rate", labels, [(t, 1.0) for t in times])
        source.add("request_count", labels, [(t, 60.0) for t in times])
        source.add("error_count", labels, [(t, 60.0 * ratio) for t in times])
    status = slo_status(source, SLO("cart", 0.99, route="/cart"), Period(0, 3600), step=60)
    assert status.total == pytest.approx(7200)
    assert status.sli == pytest.approx(0.995)
    assert [m.name for m in SLO("cart", 0.99, route="/cart").matchers()] == ["route"]
