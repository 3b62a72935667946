"""RED figures (rate, errors, duration) per route over a period, read from a SeriesSource.

Routes, SLOs and reports all need the same three numbers per route and method over a
period: how many requests, how many failed, how slow. The pipeline records them two ways
(see :mod:`paca_otel.pipeline._aliases` and :mod:`paca_otel.pipeline._reader`), and this module
reads whichever the source has:

1. The RED aliases, labelled ``route``/``method`` (no labels: all routes together):
   ``request_rate`` (requests/s over the RED window), ``request_count`` and ``error_count``
   (requests in the window), ``latency_p95`` (seconds). Totals integrate the rate over time
   (``sum(rate x step)``), and the error share is ``sum(error_count) / sum(request_count)``:
   each request is counted in every sample whose window holds it, the same number of times
   in both sums, so the ratio is exact where a sum alone would over-count.
2. Otherwise the HTTP server histogram ``http.server.request.duration`` (stable semantic
   conventions: ``http.route``, ``http.request.method``, ``http.response.status_code``) as
   the metric reader writes it: the cumulative ``.count`` and ``.sum`` (increases, with
   counter resets handled) and the per-collection ``.p95``. Errors are 5xx responses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import median

from paca_otel.analysis.source import LabelMatcher, RangeSeries, SeriesSource

__all__ = ["HISTOGRAM", "Period", "RouteStats", "read_red", "total_labels"]

HISTOGRAM = "http.server.request.duration"
"""The HTTP server request-duration histogram (stable HTTP semantic conventions)."""

_TOTAL = (LabelMatcher("route", "=", ""), LabelMatcher("method", "=", ""))


@dataclass(frozen=True, slots=True)
class Period:
    """A time range ``[start, end]`` in seconds since the epoch."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        """Length of the period."""
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RouteStats:
    """One route and method (``route == ""``: all routes together) over a period.

    Attributes:
        route: the route template (``/items/{id}``), ``""`` for the total.
        method: the HTTP method, ``""`` for the total.
        requests: requests served in the period (estimated from the rate).
        errors: failed requests (5xx or span status ERROR).
        p95: typical 95th-percentile latency, seconds (median of the per-step p95), or None.
        p95_max: worst per-step p95, seconds, or None.
        latency: the per-step p95 series ``(timestamp, seconds)`` for charts and comparisons.
        source: ``aliases`` or ``histogram``: where the figures came from.
    """

    route: str
    method: str
    requests: float
    errors: float
    p95: float | None
    p95_max: float | None
    latency: tuple[tuple[float, float], ...] = field(default=())
    source: str = "aliases"

    @property
    def error_ratio(self) -> float:
        """Errors / requests (0 without requests)."""
        return self.errors / self.requests if self.requests > 0 else 0.0

    @property
    def name(self) -> str:
        """``GET /items`` (``all routes`` for the total)."""
        if not self.route and not self.method:
            return "all routes"
        return f"{self.method} {self.route}".strip()


def total_labels() -> tuple[LabelMatcher, ...]:
    """Matchers that select the all-routes series of the RED aliases."""
    return _TOTAL


def _key(labels: dict[str, str] | object, route: str, method: str) -> tuple[str, str]:
    assert isinstance(labels, dict)  # RangeSeries.labels is a mapping
    return labels.get(route, ""), labels.get(method, "")


def _by_key(
    series: Sequence[RangeSeries], route: str, method: str
) -> dict[tuple[str, str], list[RangeSeries]]:
    out: dict[tuple[str, str], list[RangeSeries]] = {}
    for s in series:
        out.setdefault(_key(dict(s.labels), route, method), []).append(s)
    return out


def _increase(series: RangeSeries) -> float:
    """Increase of a cumulative counter over the points, counting resets as Prometheus does."""
    total = 0.0
    prev: float | None = None
    for point in series.points:
        if prev is not None:
            total += point.value - prev if point.value >= prev else point.value
        prev = point.value
    return total


def _latency(points: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    values = [v for _, v in points if math.isfinite(v)]
    if not values:
        return None, None
    return median(values), max(values)


def _from_aliases(
    source: SeriesSource,
    period: Period,
    step: float,
    matchers: Sequence[LabelMatcher],
) -> list[RouteStats]:
    query = {"start": period.start, "end": period.end, "step": step}
    rates = _by_key(source.query_range("request_rate", matchers, **query), "route", "method")
    if not rates:
        return []
    counts = _by_key(source.query_range("request_count", matchers, **query), "route", "method")
    errors = _by_key(source.query_range("error_count", matchers, **query), "route", "method")
    p95 = _by_key(source.query_range("latency_p95", matchers, **query), "route", "method")
    out: list[RouteStats] = []
    for key, rate_series in sorted(rates.items()):
        requests = math.fsum(p.value * step for s in rate_series for p in s.points)
        counted = math.fsum(p.sum for s in counts.get(key, []) for p in s.points)
        failed = math.fsum(p.sum for s in errors.get(key, []) for p in s.points)
        ratio = failed / counted if counted > 0 else 0.0
        latency = sorted((p.timestamp, p.value) for s in p95.get(key, []) for p in s.points)
        typical, worst = _latency(latency)
        out.append(
            RouteStats(key[0], key[1], requests, requests * ratio, typical, worst, tuple(latency))
        )
    return out


def _from_histogram(
    source: SeriesSource,
    period: Period,
    step: float,
    matchers: Sequence[LabelMatcher],
) -> list[RouteStats]:
    query = {"start": period.start, "end": period.end, "step": step}
    route, method, status = "http.route", "http.request.method", "http.response.status_code"
    renamed = [
        LabelMatcher({"route": route, "method": method}.get(m.name, m.name), m.op, m.value)
        for m in matchers
    ]
    counts = source.query_range(f"{HISTOGRAM}.count", renamed, **query)
    if not counts:
        return []
    p95 = _by_key(source.query_range(f"{HISTOGRAM}.p95", renamed, **query), route, method)
    totals: dict[tuple[str, str], list[float]] = {}
    for s in counts:
        key = _key(dict(s.labels), route, method)
        bucket = totals.setdefault(key, [0.0, 0.0])
        increase = _increase(s)
        bucket[0] += increase
        if s.labels.get(status, "").startswith("5"):
            bucket[1] += increase
    out: list[RouteStats] = []
    for key, (requests, failed) in sorted(totals.items()):
        per_step: dict[float, float] = {}
        for s in p95.get(key, []):
            for p in s.points:  # several status codes: the slowest stands for the step
                per_step[p.timestamp] = max(per_step.get(p.timestamp, -math.inf), p.value)
        latency = sorted(per_step.items())
        typical, worst = _latency(latency)
        out.append(
            RouteStats(
                key[0], key[1], requests, failed, typical, worst, tuple(latency), source="histogram"
            )
        )
    if out:
        requests = math.fsum(s.requests for s in out)
        failed = math.fsum(s.errors for s in out)
        out.insert(0, RouteStats("", "", requests, failed, None, None, source="histogram"))
    return out


def read_red(
    source: SeriesSource,
    period: Period,
    *,
    step: float,
    matchers: Sequence[LabelMatcher] = (),
) -> list[RouteStats]:
    """RED figures per route and method (and the all-routes total) over ``period``.

    Reads the RED aliases, or the HTTP server histogram when the source has no aliases.
    Returns an empty list when the source has neither (a service without HTTP traffic).
    """
    stats = _from_aliases(source, period, step, matchers)
    if stats:
        return stats
    return _from_histogram(source, period, step, matchers)
