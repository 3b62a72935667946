"""The analysis report's data model: what a report says, independent of how it is rendered.

Plain frozen dataclasses (not pydantic: nothing here is parsed from untrusted input, and
``dataclasses.asdict`` gives the JSON form directly). Every number a reader might act on
travels with its :class:`Evidence` (metric, labels, value, threshold, period), so a
suggestion can always answer "says who?".

Free text (titles, details, route labels, alert summaries) may contain whatever the
application put in its metric labels and alert annotations. :func:`scrub_report` is the one
place that text passes through on its way out: give it the privacy scrubber and every
string in the report, nested anywhere, is replaced by the scrubbed version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "AlertEntry",
    "AnomalyEntry",
    "Area",
    "Chart",
    "Evidence",
    "Finding",
    "ForecastEntry",
    "Level",
    "Report",
    "RouteEntry",
    "SLOEntry",
    "Suggestion",
    "TrendEntry",
    "scrub_report",
]

Area = Literal["system", "requests", "errors", "latency", "custom"]
Level = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The data behind a statement: ``metric{labels}`` was ``value`` against ``threshold``.

    Attributes:
        metric: series name (``disk_usage``, ``latency_p95``...).
        value: the observed (or forecast) value the statement rests on.
        threshold: what it was compared with (None: no fixed threshold).
        unit: unit of value and threshold (``%``, ``s``, ``ratio``, ``/s``...).
        start: start of the period the value covers (epoch seconds).
        end: end of it.
        labels: the series' labels (``route``, ``method``...).
        note: how the value was computed, in a few words (``median p95 after 14:02``).
    """

    metric: str
    value: float
    threshold: float | None
    unit: str
    start: float
    end: float
    labels: Mapping[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation about an area of the service."""

    area: Area
    level: Level
    title: str
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A concrete action, with the rule that proposed it and the evidence that triggered it.

    Attributes:
        rule: identifier of the suggestion rule (``disk_filling``, ``route_regression``...).
        area: which area it concerns.
        title: the action, imperative (``Free space on / before Tue 04:10``).
        why: one sentence of reasoning citing the numbers.
        evidence: the data it rests on.
    """

    rule: str
    area: Area
    title: str
    why: str
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class AnomalyEntry:
    """A point a detector flagged."""

    metric: str
    labels: Mapping[str, str]
    timestamp: float
    value: float
    score: float


@dataclass(frozen=True, slots=True)
class TrendEntry:
    """The robust trend of one series over the period."""

    metric: str
    labels: Mapping[str, str]
    unit: str
    per_hour: float
    per_hour_low: float
    per_hour_high: float
    p_value: float
    start_value: float
    end_value: float
    significant: bool


@dataclass(frozen=True, slots=True)
class ForecastEntry:
    """When a series is expected to reach a threshold (``seconds`` from the period's end)."""

    metric: str
    labels: Mapping[str, str]
    unit: str
    threshold: float
    level: float
    seconds: float
    earliest: float
    latest: float
    at: float


@dataclass(frozen=True, slots=True)
class SLOEntry:
    """One SLO's status over the period."""

    name: str
    description: str
    objective: float
    sli: float | None
    budget_remaining: float | None
    burn_rate: float | None
    met: bool | None


@dataclass(frozen=True, slots=True)
class AlertEntry:
    """An alert event (firing or resolved) inside the period."""

    rule: str
    state: str
    severity: str
    timestamp: float
    value: float | None
    labels: Mapping[str, str]
    summary: str


@dataclass(frozen=True, slots=True)
class RouteEntry:
    """One route's RED figures over the period."""

    route: str
    method: str
    requests: float
    errors: float
    error_ratio: float
    p95: float | None
    p95_max: float | None


@dataclass(frozen=True, slots=True)
class Chart:
    """A small line chart: one series over the period, with markers.

    Attributes:
        title: the chart's caption.
        unit: unit of the values.
        points: ``(timestamp, value)`` pairs, thinned for drawing.
        marks: timestamps to mark (anomalies, change points).
        threshold: a horizontal reference line, or None.
        band: forecast ``(timestamp, low, high)`` after the last point, if any.
    """

    title: str
    unit: str
    points: tuple[tuple[float, float], ...]
    marks: tuple[float, ...] = ()
    threshold: float | None = None
    band: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    """An analysis report over one period.

    Attributes:
        title: heading.
        generated_at: when it was built (epoch seconds).
        start: period start.
        end: period end.
        summary: a few sentences a reader can stop after.
        findings: observations per area (system, requests, errors, latency, custom).
        anomalies: points the detectors flagged, by time.
        trends: robust trends of the analysed series.
        forecasts: expected threshold crossings.
        slos: SLO status.
        alerts: alert events inside the period.
        suggestions: actions, each tied to its evidence.
        routes: per-route RED figures (busiest first).
        charts: series to draw.
    """

    title: str
    generated_at: float
    start: float
    end: float
    summary: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    anomalies: tuple[AnomalyEntry, ...] = ()
    trends: tuple[TrendEntry, ...] = ()
    forecasts: tuple[ForecastEntry, ...] = ()
    slos: tuple[SLOEntry, ...] = ()
    alerts: tuple[AlertEntry, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    routes: tuple[RouteEntry, ...] = ()
    charts: tuple[Chart, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``dataclasses.asdict``)."""
        return dataclasses.asdict(self)


T = TypeVar("T")


def _scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _scrub_value(getattr(value, f.name), scrub) for f in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_scrub_value(item, scrub) for item in value)
    if isinstance(value, list):
        return [_scrub_value(item, scrub) for item in value]
    if isinstance(value, Mapping):
        return {
            scrub(k) if isinstance(k, str) else k: _scrub_value(v, scrub) for k, v in value.items()
        }
    return value


def scrub_report(report: T, scrub: Callable[[str], str] | None) -> T:
    """``report`` with every string in it (keys and values, at any depth) passed to ``scrub``.

    The single exit point for free text: renderers only ever see a scrubbed report when a
    scrubber is given (``generate_report(..., scrub=...)`` calls this).
    """
    if scrub is None:
        return report
    result: T = _scrub_value(report, scrub)
    return result
