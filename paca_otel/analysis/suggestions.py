"""Improvement suggestions: rules that turn measured facts into actions, with evidence.

Each rule looks at one kind of observation (a forecast, a route regression, an SLO's
budget...) and proposes an action only when a number crosses a stated threshold; the
:class:`~paca_otel.analysis._report_model.Evidence` it attaches names the metric, its
labels, the value, the threshold and the period. There is no advice without data: a
service that is fine gets no suggestions.

The rules (:data:`RULES` lists their ids):

- ``disk_filling``: disk usage is forecast to reach ``disk`` % within the horizon.
- ``memory_growth``: memory rises significantly and is forecast to reach ``memory`` %.
- ``cpu_saturation``: CPU's 95th percentile over the period is above ``cpu`` %, or its
  trend reaches it within the horizon.
- ``route_regression``: a route's p95 shifted up (change point) by 20 %+, significantly.
- ``slow_route``: a route's typical p95 is above the ``latency`` target.
- ``error_hotspot``: a route fails far more often than the service as a whole.
- ``error_ratio``: the service's overall error ratio is above ``error_ratio``.
- ``slo_budget``: an SLO burnt its budget faster than planned (burn rate > 1), or missed.
- ``noisy_alert``: one alert rule fired ``alert_repeats`` times or more in the period.
- ``error_burst``: a detector flagged the error series (the burst's time and peak).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from paca_otel.analysis._red import RouteStats
from paca_otel.analysis._report_model import (
    AlertEntry,
    AnomalyEntry,
    Evidence,
    ForecastEntry,
    Suggestion,
    TrendEntry,
)
from paca_otel.analysis.routes import ErrorHotspot, LatencyRegression
from paca_otel.analysis.slo import SLOStatus
from paca_otel.errors import ConfigError

__all__ = [
    "RULES",
    "Observations",
    "Thresholds",
    "format_eta",
    "format_span",
    "format_time",
    "suggest",
]

RULES = (
    "disk_filling",
    "memory_growth",
    "cpu_saturation",
    "route_regression",
    "slow_route",
    "error_hotspot",
    "error_ratio",
    "slo_budget",
    "noisy_alert",
    "error_burst",
)
"""Ids of the suggestion rules, in the order suggestions are listed."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Levels above which the report raises findings and suggestions.

    Attributes:
        cpu: CPU busy percent (p95 over the period, or forecast).
        memory: memory used percent (forecast).
        disk: disk used percent (forecast: "disk reaches 90 % in ~14 h").
        latency: target p95 per route, seconds.
        error_ratio: overall share of failed requests.
        horizon: how far ahead forecasts may look for a crossing, seconds (7 days).
        alert_repeats: firings of one rule in the period that make it noisy.
    """

    cpu: float = 80.0
    memory: float = 90.0
    disk: float = 90.0
    latency: float = 0.5
    error_ratio: float = 0.01
    horizon: float = 7 * 86_400.0
    alert_repeats: int = 3

    def __post_init__(self) -> None:
        for name in ("cpu", "memory", "disk", "latency", "error_ratio", "horizon"):
            value = getattr(self, name)
            if not value > 0 or not math.isfinite(value):
                msg = f"report threshold {name} must be a positive number, got {value!r}"
                raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class Observations:
    """Everything the rules look at, already measured over ``[start, end]``."""

    start: float
    end: float
    thresholds: Thresholds
    trends: Mapping[str, TrendEntry] = field(default_factory=dict)
    forecasts: Mapping[str, ForecastEntry] = field(default_factory=dict)
    p95_levels: Mapping[str, float] = field(default_factory=dict)
    total: RouteStats | None = None
    regressions: Sequence[LatencyRegression] = ()
    slow_routes: Sequence[RouteStats] = ()
    hotspots: Sequence[ErrorHotspot] = ()
    slos: Sequence[SLOStatus] = ()
    alerts: Sequence[AlertEntry] = ()
    anomalies: Sequence[AnomalyEntry] = ()


def format_time(timestamp: float) -> str:
    """``Tue 14:05 UTC`` (reports cover days, so the weekday disambiguates)."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%a %H:%M UTC")


def format_eta(seconds: float) -> str:
    """``~14 h``, ``~3.5 d``, ``~25 min``, ``never`` (inf)."""
    if math.isinf(seconds):
        return "never"
    if seconds < 3600:
        return f"~{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"~{seconds / 3600:.0f} h"
    return f"~{seconds / 86_400:.1f} d"


def format_span(earliest: float, latest: float) -> str:
    """An interval of durations: ``13.6-14.3 h``, ``2.1-3.4 d``, ``5.0 d or never``."""
    if math.isinf(latest):
        return f"{format_eta(earliest).lstrip('~')} or never"
    if latest < 2 * 86_400:
        return f"{earliest / 3600:.1f}-{latest / 3600:.1f} h"
    return f"{earliest / 86_400:.1f}-{latest / 86_400:.1f} d"


def _range(forecast: ForecastEntry) -> str:
    return format_span(forecast.earliest, forecast.latest)


def _capacity(obs: Observations) -> list[Suggestion]:
    out: list[Suggestion] = []
    limits = obs.thresholds
    disk = obs.forecasts.get("disk_usage")
    if disk is not None and disk.seconds <= limits.horizon:
        trend = obs.trends.get("disk_usage")
        rate = f" (+{trend.per_hour:.2f} %/h)" if trend else ""
        out.append(
            Suggestion(
                "disk_filling",
                "system",
                f"Free space or grow the disk before {format_time(disk.at)}",
                f"disk_usage is {disk.level:.1f} % and rising{rate}: it reaches"
                f" {disk.threshold:g} % in {format_eta(disk.seconds)} ({_range(disk)}).",
                Evidence(
                    "disk_usage",
                    disk.level,
                    disk.threshold,
                    "%",
                    obs.start,
                    obs.end,
                    note=f"forecast crossing at {format_time(disk.at)}",
                ),
            )
        )
    memory = obs.forecasts.get("memory_usage")
    memory_trend = obs.trends.get("memory_usage")
    if (
        memory is not None
        and memory.seconds <= limits.horizon
        and memory_trend is not None
        and memory_trend.significant
    ):
        out.append(
            Suggestion(
                "memory_growth",
                "system",
                "Look for a memory leak (heap profile, cache bounds) or plan a restart",
                f"memory_usage grows {memory_trend.per_hour:+.2f} %/h and reaches"
                f" {memory.threshold:g} % in {format_eta(memory.seconds)} ({_range(memory)}).",
                Evidence(
                    "memory_usage",
                    memory.level,
                    memory.threshold,
                    "%",
                    obs.start,
                    obs.end,
                    note="Theil-Sen trend, Mann-Kendall significant",
                ),
            )
        )
    cpu_p95 = obs.p95_levels.get("cpu_usage")
    cpu = obs.forecasts.get("cpu_usage")
    if cpu_p95 is not None and cpu_p95 >= limits.cpu:
        out.append(
            Suggestion(
                "cpu_saturation",
                "system",
                "Add CPU capacity or profile the busiest code paths",
                f"cpu_usage spent 5 % of the period above {cpu_p95:.0f} % (p95), over the"
                f" {limits.cpu:g} % threshold.",
                Evidence(
                    "cpu_usage",
                    cpu_p95,
                    limits.cpu,
                    "%",
                    obs.start,
                    obs.end,
                    note="95th percentile of the period",
                ),
            )
        )
    elif cpu is not None and cpu.seconds <= limits.horizon:
        trend = obs.trends.get("cpu_usage")
        rate = f" {trend.per_hour:+.2f} %/h" if trend else ""
        out.append(
            Suggestion(
                "cpu_saturation",
                "system",
                "Find what makes CPU creep up (growing queues, caches, traffic) before"
                f" {format_time(cpu.at)}",
                f"cpu_usage trends{rate} from {cpu.level:.1f} % and reaches {cpu.threshold:g} %"
                f" in {format_eta(cpu.seconds)} ({_range(cpu)}).",
                Evidence(
                    "cpu_usage",
                    cpu.level,
                    cpu.threshold,
                    "%",
                    obs.start,
                    obs.end,
                    note="Theil-Sen trend extrapolated",
                ),
            )
        )
    return out


def _requests(obs: Observations) -> list[Suggestion]:
    out: list[Suggestion] = []
    for reg in obs.regressions:
        labels = {"route": reg.route, "method": reg.method}
        out.append(
            Suggestion(
                "route_regression",
                "latency",
                f"Review what changed around {format_time(reg.after_period.start)}:"
                f" {reg.name} got {reg.change * 100:.0f} % slower",
                f"{reg.name} p95 went from {reg.before * 1000:.0f} ms to"
                f" {reg.after * 1000:.0f} ms at {format_time(reg.after_period.start)}"
                f" (Mann-Whitney p={reg.p_value:.1g}); a deploy or config change there is the"
                " first suspect.",
                Evidence(
                    "latency_p95",
                    reg.after,
                    reg.before,
                    "s",
                    reg.after_period.start,
                    reg.after_period.end,
                    labels,
                    "median p95 after vs before the shift",
                ),
            )
        )
    regressed = {(r.route, r.method) for r in obs.regressions}
    for route in obs.slow_routes:
        if route.p95 is None or route.p95 < obs.thresholds.latency:
            continue
        if (route.route, route.method) in regressed:
            continue
        out.append(
            Suggestion(
                "slow_route",
                "latency",
                f"Optimise {route.name}: p95 {route.p95 * 1000:.0f} ms",
                f"{route.name} answers its {route.requests:,.0f} requests with a typical p95 of"
                f" {route.p95 * 1000:.0f} ms, above the {obs.thresholds.latency * 1000:.0f} ms"
                " target (look at its slowest spans: queries, remote calls).",
                Evidence(
                    "latency_p95",
                    route.p95,
                    obs.thresholds.latency,
                    "s",
                    obs.start,
                    obs.end,
                    {"route": route.route, "method": route.method},
                    "median of the per-step p95",
                ),
            )
        )
    for spot in obs.hotspots:
        s = spot.stats
        out.append(
            Suggestion(
                "error_hotspot",
                "errors",
                f"Fix the failures of {s.name}: {s.error_ratio * 100:.1f} % of its requests fail",
                f"{s.name} failed {s.errors:,.0f} of {s.requests:,.0f} requests"
                f" ({s.error_ratio * 100:.2f} %), against {spot.expected_ratio * 100:.2f} % for"
                " the whole service.",
                Evidence(
                    "error_rate",
                    s.error_ratio,
                    spot.expected_ratio,
                    "ratio",
                    obs.start,
                    obs.end,
                    {"route": s.route, "method": s.method},
                    "errors / requests over the period",
                ),
            )
        )
    total = obs.total
    if total is not None and total.requests > 0 and total.error_ratio > obs.thresholds.error_ratio:
        out.append(
            Suggestion(
                "error_ratio",
                "errors",
                f"Bring the error ratio down from {total.error_ratio * 100:.2f} %",
                f"{total.errors:,.0f} of {total.requests:,.0f} requests failed"
                f" ({total.error_ratio * 100:.2f} %), above the"
                f" {obs.thresholds.error_ratio * 100:g} % threshold.",
                Evidence(
                    "error_rate",
                    total.error_ratio,
                    obs.thresholds.error_ratio,
                    "ratio",
                    obs.start,
                    obs.end,
                    note="all routes",
                ),
            )
        )
    return out


def _operations(obs: Observations) -> list[Suggestion]:
    out: list[Suggestion] = []
    for status in obs.slos:
        if status.burn_rate is None or status.budget_remaining is None:
            continue
        if status.burn_rate <= 1.0 and status.met:
            continue
        slo = status.slo
        out.append(
            Suggestion(
                "slo_budget",
                "errors" if slo.kind == "availability" else "latency",
                f"Prioritise reliability work for SLO {slo.name}: budget"
                f" {'overspent' if status.budget_remaining < 0 else 'burning fast'}",
                f"{slo.describe()}: achieved {100 * (status.sli or 0):.3f} %, burn rate"
                f" {status.burn_rate:.1f}x, {status.budget_remaining * 100:.0f} % of the"
                " period's error budget left; hold risky deploys until it recovers.",
                Evidence(
                    f"slo:{slo.name}",
                    status.burn_rate,
                    1.0,
                    "x",
                    status.period.start,
                    status.period.end,
                    note="burn rate = bad share / allowed share",
                ),
            )
        )
    fired = Counter(a.rule for a in obs.alerts if a.state == "firing")
    for rule, count in sorted(fired.items()):
        if count < obs.thresholds.alert_repeats:
            continue
        out.append(
            Suggestion(
                "noisy_alert",
                "custom",
                f"Tune alert rule {rule}: it fired {count} times",
                f"{rule} fired {count} times in the period; add 'for:', a 'clear:'"
                " threshold or raise the threshold so it pages once per incident.",
                Evidence(
                    f"alert:{rule}",
                    float(count),
                    float(obs.thresholds.alert_repeats),
                    "firings",
                    obs.start,
                    obs.end,
                ),
            )
        )
    bursts = [a for a in obs.anomalies if a.metric in ("error_rate", "error_count")]
    for burst in bursts[:3]:
        out.append(
            Suggestion(
                "error_burst",
                "errors",
                f"Investigate the error burst at {format_time(burst.timestamp)}",
                f"{burst.metric} jumped to {burst.value:.4g} at {format_time(burst.timestamp)}"
                f" (anomaly score {burst.score:.2f}); check the logs and traces of that"
                " minute for the failing dependency.",
                Evidence(
                    burst.metric,
                    burst.value,
                    None,
                    "",
                    burst.timestamp,
                    burst.timestamp,
                    dict(burst.labels),
                    "flagged by the ensemble detector",
                ),
            )
        )
    return out


def suggest(obs: Observations) -> list[Suggestion]:
    """Every suggestion the observations justify, in :data:`RULES` order."""
    found = _capacity(obs) + _requests(obs) + _operations(obs)
    order = {rule: i for i, rule in enumerate(RULES)}
    return sorted(found, key=lambda s: order[s.rule])
