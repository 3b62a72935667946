"""The analysis steps of a report: system, RED (requests, errors, latency) and custom metrics.

:class:`ReportBuilder` holds one report's intermediate results while
:func:`~paca_otel.analysis.report.generate_report` runs its steps; each step reads the
source, runs the analysers (trend, forecast, detectors) and appends findings, trends,
forecasts, anomalies and charts. Split from :mod:`paca_otel.analysis.report` so each module
stays one concept: this one measures, that one assembles.

Anomalies come from the default ensemble detector (:mod:`paca_otel.analysis.detectors`)
run over the period at a finer step, warmed up on the period before it when the source
has it. A series that never decreases is read as a cumulative counter and analysed as its
per-second rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from paca_otel.analysis._red import Period, RouteStats, read_red
from paca_otel.analysis._report_model import (
    AnomalyEntry,
    Area,
    Chart,
    Evidence,
    Finding,
    ForecastEntry,
    Level,
    TrendEntry,
)
from paca_otel.analysis.detectors import Calibration, EnsembleDetector
from paca_otel.analysis.forecast import forecast, time_to_threshold
from paca_otel.analysis.source import RangeSeries, SeriesSource
from paca_otel.analysis.suggestions import Thresholds, format_eta, format_span, format_time
from paca_otel.analysis.trend import theil_sen
from paca_otel.pipeline._aliases import ALIASES

__all__ = ["SYSTEM", "ReportBuilder", "nice_step"]

_AREAS: dict[str, Area] = {"request_rate": "requests", "error_rate": "errors"}

SYSTEM = ("cpu_usage", "memory_usage", "disk_usage")
_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400)
_SKIP_PREFIXES = ("system.", "process.", "http.", "paca_otel", "otel", "target_info")
_DERIVED_SUFFIXES = (".count", ".sum", ".p50", ".p99", ".bucket")


def nice_step(raw: float) -> float:
    """The smallest round step (10 s, 1 min, 5 min, 1 h...) at least ``raw`` seconds."""
    for step in _STEPS:
        if step >= raw:
            return float(step)
    return float(math.ceil(raw / 86_400) * 86_400)


def _pick(series: list[RangeSeries]) -> RangeSeries | None:
    """The label-less series if there is one (the alias), else the first."""
    for s in series:
        if not s.labels:
            return s
    return series[0] if series else None


def _points(s: RangeSeries, start: float) -> list[tuple[float, float]]:
    return [
        (p.timestamp, p.value) for p in s.points if p.timestamp >= start and math.isfinite(p.value)
    ]


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class ReportBuilder:
    """One report's state while it is being built."""

    def __init__(
        self,
        source: SeriesSource,
        period: Period,
        thresholds: Thresholds,
        now: float,
    ) -> None:
        self.source = source
        self.period = period
        self.thresholds = thresholds
        self.now = now
        self.step = nice_step(period.seconds / 288)
        self.fine = nice_step(period.seconds / 1440)
        self.findings: list[Finding] = []
        self.anomalies: list[AnomalyEntry] = []
        self.trends: dict[str, TrendEntry] = {}
        self.forecasts: dict[str, ForecastEntry] = {}
        self.p95_levels: dict[str, float] = {}
        self.charts: list[Chart] = []

    # -- reading ----------------------------------------------------------------------

    def query(self, name: str, step: float, *, lead_in: bool = False) -> list[RangeSeries]:
        start = self.period.start - (self.period.seconds if lead_in else 0.0)
        return self.source.query_range(name, start=start, end=self.period.end, step=step)

    def evidence(
        self,
        metric: str,
        value: float,
        threshold: float | None,
        unit: str,
        labels: dict[str, str] | None = None,
        *,
        note: str = "",
    ) -> Evidence:
        return Evidence(
            metric, value, threshold, unit, self.period.start, self.period.end, labels or {}, note
        )

    # -- analysis steps ---------------------------------------------------------------

    def detect(self, name: str, labels: dict[str, str], *, counter: bool = False) -> list[float]:
        """Run the ensemble detector over the period; return the flagged timestamps.

        The detector is warmed up on the period before (when the source has it). A flagged
        point is kept only if it also stands out from the period's robust trend line (by 4
        robust standard deviations of the residuals): a creeping series is a trend, reported
        as one, not a string of "new highest value" anomalies.
        """
        matching = [
            s for s in self.query(name, self.fine, lead_in=True) if dict(s.labels) == labels
        ]
        if not matching:
            return []
        points = [(p.timestamp, p.value) for p in matching[0].points if math.isfinite(p.value)]
        if counter:
            points = _rates(points)
        inside = [(t, v) for t, v in points if t >= self.period.start]
        learn = max(30, min(300, len(inside) // 6))
        detector = EnsembleDetector(
            calibration=Calibration(learn=learn, suppress=max(10, len(inside) // 24), novelty=None)
        )
        candidates: list[tuple[float, float, float]] = []
        for t, v in points:
            result = detector.update(t, v)
            if result.is_anomaly and t >= self.period.start:
                candidates.append((t, v, result.score))
        if not candidates:
            return []
        fitted = theil_sen([t for t, _ in inside], [v for _, v in inside])
        if fitted is not None:
            residuals = [v - fitted.at(t) for t, v in inside]
            centre = _quantile(residuals, 0.5)
            noise = 1.4826 * _quantile([abs(r - centre) for r in residuals], 0.5)
            candidates = [
                c for c in candidates if abs(c[1] - fitted.at(c[0]) - centre) > 4.0 * noise
            ]
        for t, v, score in candidates:
            self.anomalies.append(AnomalyEntry(name, labels, t, v, score))
        return [t for t, _, _ in candidates]

    def trend(
        self,
        key: str,
        name: str,
        labels: dict[str, str],
        unit: str,
        points: list[tuple[float, float]],
    ) -> TrendEntry | None:
        fitted = theil_sen([t for t, _ in points], [v for _, v in points])
        if fitted is None:
            return None
        values = [v for _, v in points]
        level = _quantile(values, 0.5)
        spread = max(values) - min(values)
        # significant *and* large: a slope that moves the level by 5 % over the period
        large = abs(fitted.change) >= max(0.05 * abs(level), 0.1 * spread, 1e-12)
        entry = TrendEntry(
            metric=name,
            labels=labels,
            unit=unit,
            per_hour=fitted.per_hour,
            per_hour_low=fitted.slope_low * 3600,
            per_hour_high=fitted.slope_high * 3600,
            p_value=fitted.p_value,
            start_value=fitted.at(fitted.t0),
            end_value=fitted.at(fitted.t1),
            significant=fitted.significant(0.01) and large,
        )
        self.trends[key] = entry
        return entry

    def system(self) -> None:
        limits = {
            "cpu_usage": self.thresholds.cpu,
            "memory_usage": self.thresholds.memory,
            "disk_usage": self.thresholds.disk,
        }
        for name in SYSTEM:
            picked = _pick(self.query(name, self.step))
            if picked is None:
                continue
            points = _points(picked, self.period.start)
            if len(points) < 8:
                continue
            labels = dict(picked.labels)
            values = [v for _, v in points]
            p95 = _quantile(values, 0.95)
            self.p95_levels[name] = p95
            threshold = limits[name]
            marks = self.detect(name, labels)
            trend = self.trend(name, name, labels, "%", points)
            band: tuple[tuple[float, float, float], ...] = ()
            if trend is not None and trend.significant:
                direction = "rising" if trend.per_hour > 0 else "falling"
                self.findings.append(
                    Finding(
                        "system",
                        "info",
                        f"{name} is {direction} {trend.per_hour:+.2f} %/h"
                        f" ({trend.start_value:.1f} % to {trend.end_value:.1f} %)",
                        self.evidence(
                            name,
                            trend.end_value,
                            None,
                            "%",
                            labels,
                            note=f"Theil-Sen slope, p={trend.p_value:.1g}",
                        ),
                    )
                )
                fitted = theil_sen([t for t, _ in points], values)
                assert fitted is not None  # trend() fitted the same points
                residuals = [v - fitted.at(t) for t, v in points]
                centre = _quantile(residuals, 0.5)
                noise = 1.4826 * _quantile([abs(r - centre) for r in residuals], 0.5)
                eta = time_to_threshold(fitted, threshold, now=self.period.end, noise=noise)
                if eta is not None and 0 < eta.seconds <= self.thresholds.horizon:
                    entry = ForecastEntry(
                        name,
                        labels,
                        "%",
                        threshold,
                        eta.level,
                        eta.seconds,
                        eta.earliest,
                        eta.latest,
                        eta.at,
                    )
                    self.forecasts[name] = entry
                    self.findings.append(
                        Finding(
                            "system",
                            "warning" if eta.seconds > 86_400 else "critical",
                            f"{name} reaches {threshold:g} % in {format_eta(eta.seconds)}"
                            f" ({format_span(eta.earliest, eta.latest)})",
                            self.evidence(
                                name,
                                eta.level,
                                threshold,
                                "%",
                                labels,
                                note=f"forecast crossing at {format_time(eta.at)}",
                            ),
                        )
                    )
                    ahead = forecast(
                        [t for t, _ in points],
                        values,
                        horizon=min(eta.latest, self.period.seconds / 2, self.thresholds.horizon)
                        if math.isfinite(eta.latest)
                        else self.period.seconds / 2,
                        step=self.step,
                        period=None,
                    )
                    if ahead is not None:
                        band = tuple((p.timestamp, p.low, p.high) for p in ahead.points)
            if p95 >= threshold:
                self.findings.append(
                    Finding(
                        "system",
                        "warning",
                        f"{name} p95 was {p95:.1f} % (over {threshold:g} %)",
                        self.evidence(name, p95, threshold, "%", labels, note="95th percentile"),
                    )
                )
            self.charts.append(Chart(name, "%", tuple(points), tuple(marks), threshold, band))

    def red(self) -> tuple[RouteStats | None, list[RouteStats]]:
        stats = read_red(self.source, self.period, step=self.step)
        total = next((s for s in stats if not s.route and not s.method), None)
        routes = [s for s in stats if s.route or s.method]
        if total is None and routes:
            requests = math.fsum(s.requests for s in routes)
            errors = math.fsum(s.errors for s in routes)
            total = RouteStats("", "", requests, errors, None, None)
        if total is None:
            return None, routes
        ratio = total.error_ratio
        self.findings.append(
            Finding(
                "requests",
                "info",
                f"{total.requests:,.0f} requests, {ratio * 100:.2f} % failed",
                self.evidence(
                    "request_count",
                    total.requests,
                    None,
                    "requests",
                    note="integrated request_rate",
                ),
            )
        )
        level: Level = "warning" if ratio > self.thresholds.error_ratio else "info"
        self.findings.append(
            Finding(
                "errors",
                level,
                f"Error ratio {ratio * 100:.2f} %",
                self.evidence("error_rate", ratio, self.thresholds.error_ratio, "ratio"),
            )
        )
        for name, unit in (("request_rate", "/s"), ("error_rate", "ratio"), ("latency_p95", "s")):
            picked = _pick([s for s in self.query(name, self.step) if not s.labels])
            if picked is None:
                continue
            points = _points(picked, self.period.start)
            if len(points) < 8:
                continue
            marks = self.detect(name, {})
            trend = self.trend(name, name, {}, unit, points)
            area: Area = _AREAS.get(name, "latency")
            if trend is not None and trend.significant:
                self.findings.append(
                    Finding(
                        area,
                        "info",
                        f"{name} trends {trend.per_hour:+.3g} {unit}/h",
                        self.evidence(
                            name,
                            trend.end_value,
                            None,
                            unit,
                            {},
                            note=f"Theil-Sen slope, p={trend.p_value:.1g}",
                        ),
                    )
                )
            threshold = self.thresholds.latency if name == "latency_p95" else None
            self.charts.append(
                Chart(f"{name} (all routes)", unit, tuple(points), tuple(marks), threshold)
            )
        return total, routes

    def custom(self, limit: int) -> None:
        known = set(ALIASES) | set(SYSTEM)
        names = [
            n
            for n in self.source.names()
            if n not in known
            and not n.startswith(_SKIP_PREFIXES)
            and not n.endswith(_DERIVED_SUFFIXES)
        ][:limit]
        for name in names:
            for s in self.query(name, self.step)[:5]:
                points = _points(s, self.period.start)
                if len(points) < 8:
                    continue
                labels = dict(s.labels)
                counter = _is_counter(points)
                shown = _rates(points) if counter else points
                metric = f"rate({name})" if counter else name
                marks = self.detect(name, labels, counter=counter)
                key = f"{metric}{sorted(labels.items())}"
                trend = self.trend(key, metric, labels, "/s" if counter else "", shown)
                if trend is not None and trend.significant:
                    self.findings.append(
                        Finding(
                            "custom",
                            "info",
                            f"{metric} trends {trend.per_hour:+.3g}/h",
                            self.evidence(
                                metric,
                                trend.end_value,
                                None,
                                "",
                                labels,
                                note=f"Theil-Sen slope, p={trend.p_value:.1g}",
                            ),
                        )
                    )
                if marks:
                    self.findings.append(
                        Finding(
                            "custom",
                            "warning",
                            f"{metric}: {len(marks)} anomal{'y' if len(marks) == 1 else 'ies'}",
                            self.evidence(metric, float(len(marks)), None, "anomalies", labels),
                        )
                    )
                if trend is not None and (trend.significant or marks):
                    self.charts.append(Chart(metric, "", tuple(shown), tuple(marks)))


def _is_counter(points: list[tuple[float, float]]) -> bool:
    values = [v for _, v in points]
    rises = sum(1 for a, b in itertools.pairwise(values) if b > a)
    return rises >= 3 and all(b >= a for a, b in itertools.pairwise(values))


def _rates(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t1 > t0:
            out.append((t1, (v1 - v0 if v1 >= v0 else v1) / (t1 - t0)))
    return out
