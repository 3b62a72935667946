"""Each suggestion rule fires on its evidence and stays quiet below its threshold."""

from __future__ import annotations

from paca_otel.analysis._red import RouteStats
from paca_otel.analysis._report_model import AlertEntry, ForecastEntry, TrendEntry
from paca_otel.analysis.suggestions import Observations, Thresholds, format_eta, suggest

START, END = 0.0, 86_400.0


def rules(**kwargs: object) -> list[str]:
    obs = Observations(start=START, end=END, thresholds=Thresholds(), **kwargs)  # type: ignore[arg-type]  # test builds partial observations
    return [s.rule for s in suggest(obs)]


def trend(metric: str, per_hour: float, *, significant: bool = True) -> TrendEntry:
    return TrendEntry(
        metric, {}, "%", per_hour, per_hour * 0.9, per_hour * 1.1, 1e-9, 50, 60, significant
    )


def forecast(metric: str, hours: float) -> ForecastEntry:
    s = hours * 3600
    return ForecastEntry(metric, {}, "%", 90.0, 70.0, s, s * 0.8, s * 1.2, END + s)


def test_memory_growth_needs_significant_trend_within_horizon() -> None:
    """Memory reaching 90 % in 20 h on a significant trend is a leak suspect; in 30 d it is not."""
    assert rules(
        trends={"memory_usage": trend("memory_usage", 1.0)},
        forecasts={"memory_usage": forecast("memory_usage", 20)},
    ) == ["memory_growth"]
    assert (
        rules(
            trends={"memory_usage": trend("memory_usage", 0.01)},
            forecasts={"memory_usage": forecast("memory_usage", 720)},
        )
        == []
    )


def test_cpu_saturation_from_level() -> None:
    """CPU p95 over 80 % suggests capacity; 60 % does not."""
    assert rules(p95_levels={"cpu_usage": 92.0}) == ["cpu_saturation"]
    assert rules(p95_levels={"cpu_usage": 60.0}) == []


def test_slow_route_and_error_ratio() -> None:
    """A route over the latency target and an overall error ratio over 1 % both suggest."""
    slow = RouteStats("/report", "GET", 1000, 0, 1.2, 2.0)
    fast = RouteStats("/ok", "GET", 1000, 0, 0.05, 0.1)
    assert rules(slow_routes=[slow, fast]) == ["slow_route"]
    total = RouteStats("", "", 10_000, 300, None, None)
    assert rules(total=total) == ["error_ratio"]
    assert rules(total=RouteStats("", "", 10_000, 50, None, None)) == []


def test_noisy_alert() -> None:
    """A rule firing 3 times in the period is noisy; twice is not."""

    def fired(n: int) -> list[AlertEntry]:
        return [AlertEntry("Flappy", "firing", "warning", float(i), 1.0, {}, "") for i in range(n)]

    assert rules(alerts=fired(3)) == ["noisy_alert"]
    assert rules(alerts=fired(2)) == []


def test_format_eta() -> None:
    """Durations read naturally."""
    assert format_eta(1500) == "~25 min"
    assert format_eta(14 * 3600) == "~14 h"
    assert format_eta(5 * 86_400) == "~5.0 d"
    assert format_eta(float("inf")) == "never"
