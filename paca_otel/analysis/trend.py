"""Robust linear trend of one series: Theil-Sen slope with Mann-Kendall significance.

Why these and not least squares: monitoring series carry spikes, gaps and outliers, and one
spike moves a least-squares slope as much as an hour of real drift does. The Theil-Sen slope
(the median of the slopes between all pairs of points) ignores up to 29 % of outliers; the
Mann-Kendall test (the sign of every pair) says whether the series goes up or down more often
than chance would, without assuming normal noise; and Sen's method turns the same pairwise
slopes into a confidence interval, which forecasts and "disk full in ~14 h (10-20 h)" use.

Cost: all three use every pair, O(m^2) for m points. Series longer than
:data:`MAX_POINTS` are first thinned to that many block means (O(n)), which keeps a day of
10-second samples at about 80k pairs (a few tens of milliseconds) and only averages away
noise, not trend. Mann-Kendall assumes independent points; block means make consecutive
points less dependent, and the report also requires a size (change over the period), not a
p-value alone, before it calls a trend a finding.

Hand-written because the only well-kept implementations (SciPy's ``theilslopes``,
``pymannkendall``) pull in NumPy/SciPy, which a monitoring library should not force on
services; the formulas are short and standard.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

from paca_otel.errors import ConfigError

__all__ = ["MAX_POINTS", "TrendResult", "theil_sen", "thin"]

MAX_POINTS = 400
"""Points used at most: longer series are thinned to this many block means first."""

MIN_POINTS = 8
"""Fewer points than this give no trend (the interval would be meaningless)."""


@dataclass(frozen=True, slots=True)
class TrendResult:
    """A robust linear trend ``value ≈ intercept + slope * (t - t0)``.

    Attributes:
        slope: change per second (Theil-Sen: the median pairwise slope).
        slope_low: lower end of the slope's confidence interval (Sen's method).
        slope_high: upper end of it.
        intercept: fitted value at ``t0``.
        t0: the first timestamp used.
        t1: the last timestamp used.
        p_value: two-sided Mann-Kendall p-value (small: a monotonic trend is unlikely chance).
        tau: Kendall's tau, -1..1 (how consistently the series goes one way).
        n: points used (after thinning).
        confidence: level of the slope interval (0.95 by default).
    """

    slope: float
    slope_low: float
    slope_high: float
    intercept: float
    t0: float
    t1: float
    p_value: float
    tau: float
    n: int
    confidence: float

    def at(self, timestamp: float) -> float:
        """The fitted value at ``timestamp``."""
        return self.intercept + self.slope * (timestamp - self.t0)

    @property
    def per_hour(self) -> float:
        """The slope per hour (what reports print)."""
        return self.slope * 3600.0

    @property
    def change(self) -> float:
        """Fitted change over the analysed span (``slope * (t1 - t0)``)."""
        return self.slope * (self.t1 - self.t0)

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the trend is significant at level ``alpha`` and the interval excludes 0."""
        return self.p_value < alpha and (self.slope_low > 0.0 or self.slope_high < 0.0)


def thin(
    times: Sequence[float], values: Sequence[float], max_points: int = MAX_POINTS
) -> tuple[list[float], list[float]]:
    """At most ``max_points`` block means of the (time, value) pairs, order kept."""
    n = len(values)
    if n <= max_points:
        return list(times), list(values)
    out_t: list[float] = []
    out_v: list[float] = []
    for block in range(max_points):
        lo = block * n // max_points
        hi = (block + 1) * n // max_points
        out_t.append(math.fsum(times[lo:hi]) / (hi - lo))
        out_v.append(math.fsum(values[lo:hi]) / (hi - lo))
    return out_t, out_v


def _finite(times: Sequence[float], values: Sequence[float]) -> tuple[list[float], list[float]]:
    if len(times) != len(values):
        msg = f"times and values differ in length ({len(times)} != {len(values)})"
        raise ConfigError(msg)
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if math.isfinite(v)]
    pairs.sort()
    return [t for t, _ in pairs], [v for _, v in pairs]


def _kendall_variance(values: Sequence[float]) -> float:
    """Variance of the Mann-Kendall S statistic, corrected for tied values."""
    n = len(values)
    ties = sum(t * (t - 1) * (2 * t + 5) for t in Counter(values).values() if t > 1)
    return (n * (n - 1) * (2 * n + 5) - ties) / 18.0


def theil_sen(
    times: Sequence[float],
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    max_points: int = MAX_POINTS,
) -> TrendResult | None:
    """The Theil-Sen trend of a series, or None with fewer than :data:`MIN_POINTS` points.

    Non-finite values are gaps and are skipped; gaps in time are fine (slopes use the real
    timestamps).

    Args:
        times: timestamps in seconds.
        values: the values at those timestamps.
        confidence: level of the slope's confidence interval, in (0, 1).
        max_points: thin longer series to this many block means first.
    """
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must be in (0, 1), got {confidence!r}"
        raise ConfigError(msg)
    ts, vs = _finite(times, values)
    ts, vs = thin(ts, vs, max(max_points, MIN_POINTS))
    n = len(vs)
    if n < MIN_POINTS or ts[-1] <= ts[0]:
        return None
    slopes: list[float] = []
    s_stat = 0
    for i in range(n - 1):
        ti, vi = ts[i], vs[i]
        for j in range(i + 1, n):
            dv = vs[j] - vi
            if dv > 0:
                s_stat += 1
            elif dv < 0:
                s_stat -= 1
            dt = ts[j] - ti
            if dt > 0:
                slopes.append(dv / dt)
    slopes.sort()
    count = len(slopes)
    mid = count // 2
    slope = slopes[mid] if count % 2 else (slopes[mid - 1] + slopes[mid]) / 2.0
    variance = _kendall_variance(vs)
    sd = math.sqrt(variance) if variance > 0 else 0.0
    if sd == 0.0:
        z = 0.0
    elif s_stat > 0:
        z = (s_stat - 1) / sd
    elif s_stat < 0:
        z = (s_stat + 1) / sd
    else:
        z = 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2.0))
    z_crit = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    spread = z_crit * sd
    low_rank = max(0, min(count - 1, math.floor((count - spread) / 2.0)))
    high_rank = max(0, min(count - 1, math.ceil((count + spread) / 2.0)))
    offsets = sorted(v - slope * (t - ts[0]) for t, v in zip(ts, vs, strict=True))
    half = n // 2
    intercept = offsets[half] if n % 2 else (offsets[half - 1] + offsets[half]) / 2.0
    pairs = n * (n - 1) / 2.0
    return TrendResult(
        slope=slope,
        slope_low=slopes[low_rank],
        slope_high=slopes[high_rank],
        intercept=intercept,
        t0=ts[0],
        t1=ts[-1],
        p_value=p_value,
        tau=s_stat / pairs,
        n=n,
        confidence=confidence,
    )


def seasonal_theil_sen(
    times: Sequence[float],
    values: Sequence[float],
    *,
    period: float,
    step: float,
    confidence: float = 0.95,
) -> TrendResult | None:
    """The seasonal Kendall / Sen trend: slopes only between points at the same phase.

    A daily wave biases the plain Theil-Sen slope (a window that starts on the wave's rise
    tilts down); comparing each point only with the points at the same time of day in other
    periods (Hirsch's seasonal Kendall test) removes the wave from slope, interval and
    significance alike. Each phase bin is thinned to at most 60 points so the pairs stay
    bounded. Returns None when no phase has been seen twice.
    """
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must be in (0, 1), got {confidence!r}"
        raise ConfigError(msg)
    if not period > 0 or not step > 0:
        msg = f"period and step must be positive seconds, got {period!r} and {step!r}"
        raise ConfigError(msg)
    ts, vs = _finite(times, values)
    if len(vs) < MIN_POINTS:
        return None
    bins = max(1, round(period / step))
    groups: dict[int, tuple[list[float], list[float]]] = {}
    for t, v in zip(ts, vs, strict=True):
        group = groups.setdefault(round((t % period) / step) % bins, ([], []))
        group[0].append(t)
        group[1].append(v)
    slopes: list[float] = []
    s_stat = 0
    variance = 0.0
    pairs = 0
    for g_times, g_values in groups.values():
        gt, gv = thin(g_times, g_values, 60)
        m = len(gv)
        if m < 2:
            continue
        variance += _kendall_variance(gv)
        pairs += m * (m - 1) // 2
        for i in range(m - 1):
            for j in range(i + 1, m):
                dv = gv[j] - gv[i]
                s_stat += (dv > 0) - (dv < 0)
                if gt[j] > gt[i]:
                    slopes.append(dv / (gt[j] - gt[i]))
    if not slopes:
        return None
    slopes.sort()
    count = len(slopes)
    mid = count // 2
    slope = slopes[mid] if count % 2 else (slopes[mid - 1] + slopes[mid]) / 2.0
    sd = math.sqrt(variance) if variance > 0 else 0.0
    z = 0.0 if sd == 0.0 or s_stat == 0 else (s_stat - math.copysign(1, s_stat)) / sd
    z_crit = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    spread = z_crit * sd
    low_rank = max(0, min(count - 1, math.floor((count - spread) / 2.0)))
    high_rank = max(0, min(count - 1, math.ceil((count + spread) / 2.0)))
    offsets = sorted(v - slope * (t - ts[0]) for t, v in zip(ts, vs, strict=True))
    half = len(offsets) // 2
    intercept = offsets[half] if len(offsets) % 2 else (offsets[half - 1] + offsets[half]) / 2
    return TrendResult(
        slope=slope,
        slope_low=slopes[low_rank],
        slope_high=slopes[high_rank],
        intercept=intercept,
        t0=ts[0],
        t1=ts[-1],
        p_value=math.erfc(abs(z) / math.sqrt(2.0)),
        tau=s_stat / pairs if pairs else 0.0,
        n=len(vs),
        confidence=confidence,
    )
