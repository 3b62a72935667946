"""Route analysis: the slowest routes, error hot spots and latency regressions.

Built on the per-route RED figures of :mod:`paca_otel.analysis._red`. Each result carries the
numbers that justify it, because reports turn them into suggestions with evidence:

- *Slowest routes*: ranked by typical p95 (the median of the per-step p95 over the period,
  so one slow minute does not top the list), with enough traffic to matter.
- *Error hot spots*: routes whose errors are both numerous and more frequent than the
  service's overall error ratio predicts (a one-sided binomial z-score), so a route that
  fails as often as everything else is not singled out just for being busy.
- *Latency regressions*: a route's per-step p95 in one period against another, with the
  Mann-Whitney U test (no normality assumption; latency is skewed) and a size threshold
  (relative and absolute), since with enough points any difference is "significant". The
  report finds the "after" period itself: a level shift up in a route's p95
  (:mod:`paca_otel.analysis.changepoints`), e.g. after a deploy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median

from paca_otel.analysis._red import Period, RouteStats, read_red
from paca_otel.analysis.changepoints import change_points
from paca_otel.analysis.source import LabelMatcher, SeriesSource

__all__ = [
    "ErrorHotspot",
    "LatencyRegression",
    "error_hotspots",
    "latency_regressions",
    "latency_shifts",
    "mann_whitney",
    "slowest_routes",
]


@dataclass(frozen=True, slots=True)
class ErrorHotspot:
    """A route that fails more than the service as a whole.

    Attributes:
        stats: the route's figures.
        expected_ratio: the service's overall error ratio (what the route "should" show).
        z: how many binomial standard deviations above that expectation its errors are.
    """

    stats: RouteStats
    expected_ratio: float
    z: float


@dataclass(frozen=True, slots=True)
class LatencyRegression:
    """A route that got slower between two periods.

    Attributes:
        route: route template.
        method: HTTP method.
        before: median p95 in the earlier period, seconds.
        after: median p95 in the later period, seconds.
        p_value: one-sided Mann-Whitney p-value that "after" is not slower.
        before_period: the earlier period.
        after_period: the later period (its start is the change time when found by shift).
    """

    route: str
    method: str
    before: float
    after: float
    p_value: float
    before_period: Period
    after_period: Period

    @property
    def change(self) -> float:
        """Relative change, ``after / before - 1`` (inf from 0)."""
        return self.after / self.before - 1.0 if self.before > 0 else math.inf

    @property
    def name(self) -> str:
        """``GET /items``."""
        return f"{self.method} {self.route}".strip()


def slowest_routes(
    stats: Sequence[RouteStats], *, top: int = 5, min_requests: float = 10.0
) -> list[RouteStats]:
    """Up to ``top`` routes by typical p95, slowest first (the all-routes total excluded)."""
    ranked = [s for s in stats if s.route and s.p95 is not None and s.requests >= min_requests]
    ranked.sort(key=lambda s: s.p95 or 0.0, reverse=True)
    return ranked[:top]


def error_hotspots(
    stats: Sequence[RouteStats],
    *,
    min_errors: float = 5.0,
    min_ratio: float = 0.01,
    z: float = 3.0,
) -> list[ErrorHotspot]:
    """Routes failing more than the service's overall ratio predicts; most errors first.

    Args:
        stats: per-route figures (the all-routes total, if present, gives the overall ratio).
        min_errors: ignore routes with fewer errors.
        min_ratio: ignore routes whose own error ratio is below this.
        z: least binomial z-score above the overall ratio.
    """
    routes = [s for s in stats if s.route]
    total = next((s for s in stats if not s.route and not s.method), None)
    requests = total.requests if total else math.fsum(s.requests for s in routes)
    errors = total.errors if total else math.fsum(s.errors for s in routes)
    overall = errors / requests if requests > 0 else 0.0
    out: list[ErrorHotspot] = []
    for s in routes:
        if s.errors < min_errors or s.error_ratio < min_ratio or s.requests <= 0:
            continue
        expected = s.requests * overall
        sd = math.sqrt(max(s.requests * overall * (1.0 - overall), 1e-12))
        score = (s.errors - expected) / sd
        # every error is a hot spot when the overall ratio is ~0; the z-score then explodes
        if score >= z or overall == 0.0:
            out.append(ErrorHotspot(s, overall, score))
    out.sort(key=lambda h: h.stats.errors, reverse=True)
    return out


def mann_whitney(before: Sequence[float], after: Sequence[float]) -> float:
    """One-sided Mann-Whitney U p-value that ``after`` is *not* stochastically larger.

    Normal approximation with tie correction (fine from ~8 values per side).
    """
    n1, n2 = len(before), len(after)
    if n1 == 0 or n2 == 0:
        return 1.0
    combined = sorted([(v, 0) for v in before] + [(v, 1) for v in after])
    ranks = [0.0] * len(combined)
    ties = 0.0
    i = 0
    while i < len(combined):
        j = i
        while j + 1 < len(combined) and combined[j + 1][0] == combined[i][0]:
            j += 1
        rank = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[k] = rank
        size = j - i + 1
        ties += size**3 - size
        i = j + 1
    rank_after = math.fsum(r for r, (_, side) in zip(ranks, combined, strict=True) if side)
    u = rank_after - n2 * (n2 + 1) / 2.0
    n = n1 + n2
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2.0 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _regression(
    route: RouteStats,
    before: list[float],
    after: list[float],
    periods: tuple[Period, Period],
    *,
    min_change: float,
    min_delta: float,
    alpha: float,
) -> LatencyRegression | None:
    if len(before) < 5 or len(after) < 5:
        return None
    old, new = median(before), median(after)
    if new - old < min_delta or (old > 0 and new / old - 1.0 < min_change):
        return None
    p_value = mann_whitney(before, after)
    if p_value >= alpha:
        return None
    return LatencyRegression(route.route, route.method, old, new, p_value, *periods)


def latency_regressions(
    source: SeriesSource,
    before: Period,
    after: Period,
    *,
    step: float,
    matchers: Sequence[LabelMatcher] = (),
    min_change: float = 0.2,
    min_delta: float = 0.005,
    alpha: float = 0.01,
) -> list[LatencyRegression]:
    """Routes whose p95 is higher in ``after`` than in ``before``; largest change first.

    Args:
        source: where the RED figures are read from.
        before: the reference period (e.g. the day before a deploy).
        after: the period to check.
        step: query step, seconds (each step's p95 is one observation).
        matchers: restrict to some routes.
        min_change: least relative increase of the median p95 (0.2: 20 % slower).
        min_delta: least absolute increase, seconds (5 ms: below that nobody notices).
        alpha: significance level of the one-sided Mann-Whitney test.
    """
    old = {(s.route, s.method): s for s in read_red(source, before, step=step, matchers=matchers)}
    out: list[LatencyRegression] = []
    for s in read_red(source, after, step=step, matchers=matchers):
        reference = old.get((s.route, s.method))
        if reference is None or not s.route:
            continue
        found = _regression(
            s,
            [v for _, v in reference.latency],
            [v for _, v in s.latency],
            (before, after),
            min_change=min_change,
            min_delta=min_delta,
            alpha=alpha,
        )
        if found is not None:
            out.append(found)
    out.sort(key=lambda r: r.change, reverse=True)
    return out


def latency_shifts(
    stats: Sequence[RouteStats],
    *,
    min_change: float = 0.2,
    min_delta: float = 0.005,
    alpha: float = 0.01,
) -> list[LatencyRegression]:
    """Regressions inside one period: a route's p95 shifted up at a change point.

    For each route, the largest upward level shift of its p95 splits the period into
    before and after, which are then compared as in :func:`latency_regressions`.
    """
    out: list[LatencyRegression] = []
    for s in stats:
        if not s.route or len(s.latency) < 10:
            continue
        times = [t for t, _ in s.latency]
        values = [v for _, v in s.latency]
        ups = [cp for cp in change_points(times, values) if cp.shift > 0]
        if not ups:
            continue
        cp = max(ups, key=lambda c: c.shift)
        periods = (Period(times[0], times[cp.index - 1]), Period(cp.timestamp, times[-1]))
        found = _regression(
            s,
            values[: cp.index],
            values[cp.index :],
            periods,
            min_change=min_change,
            min_delta=min_delta,
            alpha=alpha,
        )
        if found is not None:
            out.append(found)
    out.sort(key=lambda r: r.change, reverse=True)
    return out
